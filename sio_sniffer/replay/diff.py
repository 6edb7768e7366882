"""Comparing what the server sent in the capture with what it sent in the replay."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sio_sniffer.replay.script import Observed

DEFAULT_IGNORE = ("id", "_id", "ts", "timestamp", "time", "date", "created_at", "updated_at")


def normalise(value: Any, ignore: frozenset[str], sids: dict[str, str]) -> Any:
    """A payload made comparable: ignored keys blanked, captured sids mapped to replay sids."""
    if isinstance(value, dict):
        return {k: "<ignored>" if k in ignore else normalise(v, ignore, sids)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v, ignore, sids) for v in value]
    if isinstance(value, str):
        for old, new in sids.items():
            if old in value:
                value = value.replace(old, new)
        return value
    return value


@dataclass(frozen=True)
class Difference:
    kind: str  # missing | extra | changed
    expected: Observed | None
    actual: Observed | None

    def describe(self) -> str:
        if self.kind == "missing" and self.expected is not None:
            return f"missing: {self.expected.describe()}"
        if self.kind == "extra" and self.actual is not None:
            return f"extra:   {self.actual.describe()}"
        assert self.expected is not None and self.actual is not None
        return (f"changed: {self.expected.describe()}\n"
                f"     now: {self.actual.describe()}")


def diff(expected: Sequence[Observed], actual: Sequence[Observed], ignore: frozenset[str],
         sids: dict[str, str]) -> list[Difference]:
    """Missing / extra / changed between what the server sent in the capture and in the replay."""
    exp = [Observed(o.kind, o.nsp, o.name, normalise(o.args, ignore, sids)) for o in expected]
    act = [Observed(o.kind, o.nsp, o.name, normalise(o.args, ignore, {})) for o in actual]
    out: list[Difference] = []
    matcher = difflib.SequenceMatcher(a=[o.key() for o in exp], b=[o.key() for o in act],
                                      autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.extend(Difference("changed", e, a) for e, a in zip(exp[i1:i2], act[j1:j2],
                                                                   strict=True)
                       if e.args != a.args)
            continue
        out.extend(Difference("missing", e, None) for e in exp[i1:i2])
        out.extend(Difference("extra", None, a) for a in act[j1:j2])
    return out


@dataclass
class ReplayResult:
    """Per captured client: the differences; plus the HTTP steps' statuses and any errors."""

    differences: dict[str, list[Difference]]
    actual: dict[str, list[Observed]]
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors and not any(self.differences.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "clients": {
                cid: [{"kind": d.kind,
                       "expected": None if d.expected is None else d.expected.describe(),
                       "actual": None if d.actual is None else d.actual.describe()}
                      for d in diffs]
                for cid, diffs in self.differences.items()
            },
        }

    def text(self) -> str:
        lines = []
        for cid, diffs in self.differences.items():
            if diffs:
                lines.append(f"client {cid}: {len(diffs)} difference(s)")
                lines.extend("  " + d.describe().replace("\n", "\n  ") for d in diffs)
            else:
                lines.append(f"client {cid}: same {len(self.actual.get(cid, []))} item(s)")
        lines.extend(f"error: {e}" for e in self.errors)
        lines.append("replay matches the capture" if self.ok else "replay differs from the capture")
        return "\n".join(lines)
