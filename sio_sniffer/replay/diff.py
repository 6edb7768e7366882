"""Comparing what the server sent in the capture with what it sent in the replay."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from sio_sniffer.replay import noise
from sio_sniffer.replay.script import Observed


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
class Change:
    """One place where a payload differs: a value changed, a field dropped or added."""

    path: str
    old: Any
    new: Any

    def describe(self) -> str:
        if self.new is noise.ABSENT:
            return f"field {self.path} dropped (was {_show(self.old)})"
        if self.old is noise.ABSENT:
            return f"field {self.path} added ({_show(self.new)})"
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"


def _show(value: Any) -> str:
    text = orjson.dumps(value, default=repr).decode()
    return text if len(text) <= 80 else text[:80] + "..."


@dataclass(frozen=True)
class Difference:
    kind: str  # missing | extra | changed | renamed
    expected: Observed | None
    actual: Observed | None
    changes: tuple[Change, ...] = ()

    def describe(self) -> str:
        if self.kind == "missing" and self.expected is not None:
            return f"missing: {self.expected.describe()}"
        if self.kind == "extra" and self.actual is not None:
            return f"extra:   {self.actual.describe()}"
        assert self.expected is not None and self.actual is not None
        if self.kind == "renamed":
            lines = [f"renamed: {self.expected.place()} -> {self.actual.name}"]
        else:
            lines = [f"changed: {self.expected.describe()}",
                     f"     now: {self.actual.describe()}"]
        lines.extend(f"   where: {c.describe()}" for c in self.changes)
        return "\n".join(lines)


@dataclass
class Compared:
    """One client's comparison: the differences that fail the replay, and the noise."""

    differences: list[Difference]
    noise: list[noise.Noise]


def diff(expected: Sequence[Observed], actual: Sequence[Observed], ignore: frozenset[str],
         sids: dict[str, str], *, strict: bool = False,
         unstable: frozenset[noise.Place] = frozenset()) -> Compared:
    """Missing / extra / renamed / changed between what the server sent in the capture and in
    the replay; the values that differ only as noise does (see :mod:`noise`) are counted apart,
    unless ``strict``. ``unstable``: places that differed between two replays.

    A value that equals its replayed twin once the captured sids in it are mapped to the
    replay's is noise even when ``strict``: sids are fresh on every connection by protocol, so a
    comparison that counted them could never pass.
    """
    exp = [Observed(o.kind, o.nsp, o.name, normalise(o.args, ignore, {}), o.ts)
           for o in expected]
    act = [Observed(o.kind, o.nsp, o.name, normalise(o.args, ignore, {}), o.ts) for o in actual]
    volatile: set[noise.Place] = set() if strict else noise.volatile_places(exp)
    out: list[Difference] = []
    noisy: Counter[tuple[str, str, str]] = Counter()
    matcher = difflib.SequenceMatcher(a=[o.key() for o in exp], b=[o.key() for o in act],
                                      autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal" or _renamed(op, exp[i1:i2], act[j1:j2]):
            for e, a in zip(exp[i1:i2], act[j1:j2], strict=True):
                changes = _changes(e, a, sids, strict, volatile, unstable, noisy)
                if e.name != a.name:
                    out.append(Difference("renamed", e, a, changes))
                elif changes:
                    out.append(Difference("changed", e, a, changes))
            continue
        out.extend(Difference("missing", e, None) for e in exp[i1:i2])
        out.extend(Difference("extra", None, a) for a in act[j1:j2])
    return Compared(out, [noise.Noise(rule, where, path, n)
                          for (rule, where, path), n in noisy.items()])


def _renamed(op: str, exp: Sequence[Observed], act: Sequence[Observed]) -> bool:
    """A run of one event that now comes, as often and where it came, under one other name."""
    return (op == "replace" and len(exp) == len(act)
            and len({(e.kind, e.nsp, e.name, a.kind, a.nsp, a.name)
                     for e, a in zip(exp, act, strict=True)}) == 1
            and exp[0].kind == act[0].kind == "event" and exp[0].nsp == act[0].nsp)


def _changes(e: Observed, a: Observed, sids: dict[str, str], strict: bool,
             volatile: set[noise.Place],
             unstable: frozenset[noise.Place],
             noisy: Counter[tuple[str, str, str]]) -> tuple[Change, ...]:
    """The changes of ``a`` from ``e`` that are not noise; the noise counted into ``noisy``."""
    real = []
    for path, old, new in noise.leaf_changes(e.args, a.args):
        found = None
        if isinstance(old, str) and sids and normalise(old, frozenset(), sids) == new:
            found = noise.SID
        elif not strict and old is not noise.ABSENT and new is not noise.ABSENT:
            found = noise.rule(old, new, e.ts, a.ts)
            if found is None and (e.key(), path) in volatile:
                found = noise.VOLATILE
            if found is None and (e.key(), path) in unstable:
                found = noise.TWICE
        if found is None:
            real.append(Change(noise.label(path), old, new))
        else:
            noisy[(found, e.place(), noise.label(path))] += 1
    return tuple(real)


@dataclass
class ReplayResult:
    """Per captured client: the differences and the noise; plus the HTTP steps' statuses and
    any errors. Noise never fails a replay."""

    differences: dict[str, list[Difference]]
    actual: dict[str, list[Observed]]
    errors: list[str]
    noise: dict[str, list[noise.Noise]] = field(default_factory=dict)

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
                       "actual": None if d.actual is None else d.actual.describe(),
                       "changes": [c.describe() for c in d.changes]}
                      for d in diffs]
                for cid, diffs in self.differences.items()
            },
            "noise": {
                cid: [{"rule": n.rule, "where": n.where, "path": n.path, "count": n.count}
                      for n in found]
                for cid, found in self.noise.items() if found
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
            lines.extend("  " + n.describe() for n in self.noise.get(cid, []))
        lines.extend(f"error: {e}" for e in self.errors)
        lines.append("replay matches the capture" if self.ok else "replay differs from the capture")
        return "\n".join(lines)
