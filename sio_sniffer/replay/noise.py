"""Which differences between a captured and a replayed payload are noise, as Diffy judges them.

A value is noise by its nature or by its behaviour, never by its key name (servers name their
clocks ``relayed_at``, ``sentAt``, ``server_time``, their ids ``traceRef``, ``requestId``):

- nature: a time (a number of epoch seconds, milliseconds or microseconds near the clock of the
  moment it was received, in the capture and in the replay alike, or two ISO-8601 date-times), two
  UUIDs, two random tokens (same length, letters and digits mixed in one of them at least);
- behaviour: a value that took a different value on every event of its kind in the capture (a
  counter, a nonce), or one that differed between two replays (``replay --twice``).

Session ids: a value that holds a captured Engine.IO or Socket.IO sid and equals its replayed
twin once that sid is mapped to the replay's is noise (the diff maps them); a value derived from
a sid in another way, such as a hash of it, looks like a random token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sio_sniffer.analysis.payload import canonical
from sio_sniffer.replay.script import Observed

Path = tuple[str | int, ...]
# (kind, nsp, name) of an item, and a path into its arguments
Place = tuple[tuple[str, str, str], Path]

# How far an epoch time may be from the moment its item was received and still be taken for a
# time: generous, as a server's clock or its idea of "when" (a job's start) may be off by hours.
CLOCK_WINDOW = 86_400.0
_SCALES = (1.0, 1e3, 1e6)  # epoch seconds, milliseconds, microseconds
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_TOKEN = re.compile(r"^[A-Za-z0-9_\-+/=]{8,}$")

TIME = "look like server time"
UUID = "look like UUIDs"
TOKEN = "look like random tokens"
VOLATILE = "changed on every event of their kind in the capture"
TWICE = "differed between the two replays"
SID = "hold the session id"


class _Absent:
    """A key one side has and the other has not."""

    def __repr__(self) -> str:
        return "<absent>"


ABSENT = _Absent()


def leaf_changes(old: Any, new: Any, path: Path = ()) -> Iterator[tuple[Path, Any, Any]]:
    """Where two payloads differ: (path, old value, new value), ``ABSENT`` for a missing key.

    A list whose length changed is one change of the whole list: its items no longer pair up.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            yield from leaf_changes(old.get(key, ABSENT), new.get(key, ABSENT), (*path, key))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from leaf_changes(a, b, (*path, i))
    elif type(old) is not type(new) or old != new:
        yield path, old, new


def volatile_places(items: Sequence[Observed]) -> set[Place]:
    """Places whose value differed on every item of their kind (two at least) in ``items``."""
    values: dict[Place, set[bytes]] = {}
    counts: dict[tuple[str, str, str], int] = {}
    for obs in items:
        counts[obs.key()] = counts.get(obs.key(), 0) + 1
        for path, value in _scalars(obs.args, ()):
            values.setdefault((obs.key(), path), set()).add(canonical(value))
    return {place for place, seen in values.items()
            if counts[place[0]] >= 2 and len(seen) == counts[place[0]]}


def unstable_places(first: Sequence[Observed], second: Sequence[Observed]) -> set[Place]:
    """Places whose value differed between two replays, item by item of the same kind."""
    out: set[Place] = set()
    firsts: dict[tuple[str, str, str], list[Observed]] = {}
    for obs in first:
        firsts.setdefault(obs.key(), []).append(obs)
    seen: dict[tuple[str, str, str], int] = {}
    for obs in second:
        nth = seen.get(obs.key(), 0)
        seen[obs.key()] = nth + 1
        twins = firsts.get(obs.key(), [])
        if nth < len(twins):
            out.update((obs.key(), path) for path, _, _ in leaf_changes(twins[nth].args, obs.args))
    return out


def _scalars(value: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, dict):
        for key, v in value.items():
            yield from _scalars(v, (*path, key))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _scalars(v, (*path, i))
    else:
        yield path, value


def rule(old: Any, new: Any, old_ts: float, new_ts: float) -> str | None:
    """The nature rule two differing values both fit, if any (the behaviour rules need the
    whole capture: :func:`volatile_places`, :func:`unstable_places`)."""
    if _is_time(old, old_ts) and _is_time(new, new_ts):
        return TIME
    if not (isinstance(old, str) and isinstance(new, str)):
        return None
    if _UUID.match(old) and _UUID.match(new):
        return UUID
    if (len(old) == len(new) and _TOKEN.match(old) and _TOKEN.match(new)
            and (_mixed(old) or _mixed(new))):
        return TOKEN
    return None


def _is_time(value: Any, clock: float) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return any(abs(value / scale - clock) < CLOCK_WINDOW for scale in _SCALES)
    if isinstance(value, str) and _ISO.match(value):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    return False


def _mixed(value: str) -> bool:
    """Letters and digits mixed: "degraded" or "12345678" are a word and a number, not tokens.
    One side of a pair is enough, as a random token is now and then all digits (a 16-digit hex
    token, one time in 2,000)."""
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def label(path: Path) -> str:
    """A path as a user reads it: ``relayed_at``, ``meta.sentAt``, ``[1].id`` (the first
    argument's index left out, as most events have one)."""
    parts = list(path)
    if parts and parts[0] == 0:
        parts = parts[1:]
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(the value)"


@dataclass(frozen=True)
class Noise:
    """Values that differed at one place, all by one rule: reported apart, never failing."""

    rule: str
    where: str  # "/ pong_back", "/ ack of ping_me"
    path: str
    count: int

    def describe(self) -> str:
        if self.count == 1:
            what = _SINGULAR.get(self.rule, self.rule)
            return f"noise: 1 value under {self.path} ({self.where}) {what}"
        return f"noise: {self.count} values under {self.path} ({self.where}) {self.rule}"


_SINGULAR = {TIME: "looks like server time", UUID: "looks like a UUID",
             TOKEN: "looks like a random token", SID: "holds the session id"}
