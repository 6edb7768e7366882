"""Broadcast grouping, duplicates and inferred rooms.

The server writes one event to each recipient separately; deliveries with the same namespace,
name and payload within a short window are one emission (a :class:`Group`). A group with several
recipients is a ``broadcast``; the clients connected on that namespace that did not get it are
``missed``. A group lives a little longer than its window so that (a) a second delivery to the
same client is caught as a duplicate and (b) a slow polling client that fetches it late is not
counted as missed. Each distinct set of recipients is an inferred room.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from sio_sniffer.analysis.sessions import SessionTable

GroupKey = tuple[str | None, str | None, bytes]


@dataclass(slots=True)
class Group:
    """One emission of an event, delivered to one or more clients."""

    key: GroupKey
    nsp: str | None
    name: str | None
    args: Any
    size: int | None
    first: float
    recipients: dict[str, float] = field(default_factory=dict)
    late: set[str] = field(default_factory=set)
    missed: list[str] = field(default_factory=list)
    everyone: bool = False
    duplicates: set[str] = field(default_factory=set)
    announced: bool = False
    echo_ids: list[int] = field(default_factory=list)
    matched: bool = False


@dataclass(slots=True)
class Room:
    """A set of clients that the server addressed together."""

    nsp: str | None
    members: frozenset[str]
    first: float
    last: float
    count: int = 0
    names: Counter[str] = field(default_factory=Counter)
    everyone: bool = False


class Groups:
    """Live groups ordered by first delivery, bounded in number and in lifetime."""

    def __init__(self, window: float, lifetime: float, max_groups: int, max_rooms: int,
                 sessions: SessionTable) -> None:
        self.window = window
        self.lifetime = lifetime
        self.max_groups = max_groups
        self.max_rooms = max_rooms
        self.sessions = sessions
        self.live: OrderedDict[GroupKey, Group] = OrderedDict()
        self.unannounced: deque[Group] = deque()
        self.rooms: OrderedDict[tuple[str | None, frozenset[str]], Room] = OrderedDict()
        # Recent distinct recipient sets per (nsp, name): a client missing from a set it used to be
        # part of is a partial broadcast even when the server does use rooms.
        self.history: OrderedDict[tuple[str | None, str | None], deque[frozenset[str]]] = (
            OrderedDict())
        self.broadcasts = 0
        self.evicted = 0

    def get(self, key: GroupKey) -> Group | None:
        return self.live.get(key)

    def start(self, key: GroupKey, nsp: str | None, name: str | None, args: Any,
              size: int | None, ts: float) -> Group:
        group = Group(key=key, nsp=nsp, name=name, args=args, size=size, first=ts)
        self.live[key] = group
        self.unannounced.append(group)
        return group

    def replace(self, old: Group) -> Group:
        """Take ``old`` out of the live table (its key is being reused by a new emission)."""
        self.live.pop(old.key, None)
        return old

    def overflow(self) -> list[Group]:
        out = []
        while len(self.live) > self.max_groups:
            _, group = self.live.popitem(last=False)
            self.evicted += 1
            out.append(group)
        return out

    def next_due(self) -> float:
        """When the next group is to be announced or expired (infinity if none is live)."""
        due = math.inf
        if self.unannounced:
            due = self.unannounced[0].first + self.window
        if self.live:
            due = min(due, next(iter(self.live.values())).first + self.lifetime)
        return due

    def due_announce(self, now: float) -> list[Group]:
        out = []
        while self.unannounced and (self.unannounced[0].first + self.window <= now
                                    or self.unannounced[0].announced):
            group = self.unannounced.popleft()
            if not group.announced:
                out.append(group)
        return out

    def due_expire(self, now: float) -> list[Group]:
        out = []
        while self.live:
            group = next(iter(self.live.values()))
            if group.first + self.lifetime > now:
                break
            self.live.popitem(last=False)
            out.append(group)
        return out

    def compute_missed(self, group: Group) -> None:
        """Clients connected on the group's namespace since before it was sent, that lack it."""
        if group.nsp is None:
            return
        connected = []
        for session in self.sessions.on_nsp(group.nsp):
            state = session.nsps[group.nsp]
            if state.since <= group.first:
                connected.append(session.eio_sid)
        group.missed = [sid for sid in connected if sid not in group.recipients]
        group.everyone = not group.missed

    def record_room(self, group: Group) -> None:
        members = frozenset(group.recipients)
        key = (group.nsp, members)
        room = self.rooms.get(key)
        if room is None:
            room = Room(nsp=group.nsp, members=members, first=group.first, last=group.first)
            self.rooms[key] = room
            while len(self.rooms) > self.max_rooms:
                self.rooms.popitem(last=False)
        self.rooms.move_to_end(key)
        room.count += 1
        room.last = group.first
        room.everyone = group.everyone
        if group.name is not None and (group.name in room.names or len(room.names) < 16):
            room.names[group.name] += 1
        stream = (group.nsp, group.name)
        sets = self.history.get(stream)
        if sets is None:
            sets = deque(maxlen=8)
            self.history[stream] = sets
            while len(self.history) > self.max_rooms:
                self.history.popitem(last=False)
        self.history.move_to_end(stream)
        if members not in sets:
            sets.append(members)

    def usual_recipients(self, group: Group) -> set[str]:
        """Clients that earlier got this event name together with all of this group's recipients."""
        sets = self.history.get((group.nsp, group.name))
        if not sets:
            return set()
        current = set(group.recipients)
        usual: set[str] = set()
        for members in sets:
            if current < members:
                usual |= members - current
        return usual

    def describe_rooms(self) -> list[dict[str, Any]]:
        out = []
        for room in sorted(self.rooms.values(), key=lambda r: (-r.count, r.first)):
            members = []
            for sid in sorted(room.members):
                session = self.sessions.known(sid)
                members.append({
                    "eio_sid": sid,
                    "role": session.role() if session else None,
                    "connected": bool(session and session.closed is None),
                })
            out.append({
                "nsp": room.nsp,
                "members": members,
                "broadcasts": room.count,
                "names": [n for n, _ in room.names.most_common(5)],
                "everyone": room.everyone,
                "first": room.first,
                "last": room.last,
            })
        return out
