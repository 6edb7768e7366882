"""Outgoing events: broadcast grouping, duplicates, partial broadcasts and inferred rooms.

The server writes one event to each recipient separately; deliveries with the same namespace,
name and payload within a short window are one emission (a :class:`Group`). A group with several
recipients is a ``broadcast``; the clients connected on that namespace that did not get it are
``missed``. A group lives a little longer than its window so that (a) a second delivery to the
same client is caught as a duplicate (unless the client sent an event in between: a retry or a
new request the server answers alike) and (b) a slow polling client that fetches it late is not
counted as missed. Each distinct set of recipients is an inferred room.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from sio_sniffer import model
from sio_sniffer.analysis import payload
from sio_sniffer.analysis.bookkeeping import Part, Shared
from sio_sniffer.analysis.relay import Relay
from sio_sniffer.analysis.sessions import NspState, Session, SessionTable
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F

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


class Broadcasts(Part):
    """Every event the server sends: grouped into emissions (announced as ``broadcast``
    records), checked for duplicates, for missed clients and against the names the profile's
    dashboard listens to; each emission is offered to the :class:`Relay`."""

    def __init__(self, shared: Shared, relay: Relay) -> None:
        super().__init__(shared)
        config, sessions = shared.config, shared.sessions
        self.relay = relay
        lifetime = max(config.broadcast_window, config.duplicate_window, config.deadline)
        self.groups = Groups(config.broadcast_window, lifetime, config.max_groups,
                             config.max_rooms, sessions)
        self.unlistened: OrderedDict[tuple[str | None, str], int] = OrderedDict()

    def deliver(self, record: Record, session: Session | None) -> None:
        """One outgoing event, to the client of ``session`` (None: not known)."""
        recipient = session.eio_sid if session else (record.eio_sid or record.conn)
        if session is not None:
            session.events_out += 1
            session.last_out = record.ts
            if record.nsp is not None and not session.connected(record.nsp):
                # python-socketio may deliver events emitted in the connect handler before the
                # CONNECT answer: receiving on a namespace is proof of being connected there.
                state = session.nsps.get(record.nsp)
                if state is None or state.state != "refused":
                    session.nsps[record.nsp] = NspState(since=record.ts, state="connected")
        self._check_listened(record, session)
        key = (record.nsp, record.name, payload.fingerprint(record.args))
        repeat = True
        if session is not None:
            stream = (record.nsp, record.name)
            last = (key, session.events_in)
            repeat = session.last_keys.get(stream) == last
            session.last_keys[stream] = last
            if len(session.last_keys) > 32:
                del session.last_keys[next(iter(session.last_keys))]
        group = self.groups.get(key)
        if group is not None and recipient is not None:
            previous = group.recipients.get(recipient)
            if previous is not None:
                if (repeat and record.ts - previous <= self.config.duplicate_window
                        and not self.relay.awaited(record, recipient)):
                    if recipient not in group.duplicates:
                        group.duplicates.add(recipient)
                        self._duplicate(record, group, session, recipient, previous)
                    return
            elif not group.announced:
                group.recipients[recipient] = record.ts
                self._close_echoes(group, recipient, record)
                return
            elif recipient in group.missed:
                group.late.add(recipient)
                self._close_echoes(group, recipient, record)
                return
            self.finalize(self.groups.replace(group))
        group = self.groups.start(key, record.nsp, record.name, record.args, record.size,
                                  record.ts)
        self.wake_by(record.ts + min(self.groups.window, self.groups.lifetime))
        if recipient is not None:
            group.recipients[recipient] = record.ts
        for old in self.groups.overflow():
            self.finalize(old)
        group.echo_ids, group.matched = self.relay.emitted(record, recipient)

    def _close_echoes(self, group: Group, recipient: str, record: Record) -> None:
        if group.echo_ids:
            group.echo_ids = self.relay.close_echoes(group.echo_ids, recipient, record)

    def _duplicate(self, record: Record, group: Group, session: Session | None, recipient: str,
                   previous: float) -> None:
        who = session.label() if session else recipient
        gap_ms = (record.ts - previous) * 1000
        self.flag(record.ts, F.DUPLICATE, "same_client",
                  f"{who} received {record.name!r} on {record.nsp} twice with the same payload, "
                  f"{gap_ms:.0f} ms apart",
                  "the server emits this event twice (two relay paths, or a handler registered "
                  "twice): remove one", record, dedupe=(record.nsp, record.name, recipient),
                  gap_ms=round(gap_ms, 1))

    def _check_listened(self, record: Record, session: Session | None) -> None:
        profile = self.profile
        if (profile is None or not profile.listens or record.name is None
                or record.name in profile.listens or record.name in profile.ignores):
            return
        if profile.nsp is not None and record.nsp != profile.nsp:
            return
        if session is not None and session.role() != "dashboard":
            return
        key = (record.nsp, record.name)
        seen = self.unlistened.get(key)
        self.unlistened[key] = (seen or 0) + 1
        if seen is not None:
            return
        self.bounds.bound(self.unlistened, 256)
        listens = ", ".join(sorted(profile.listens))
        who = session.label() if session else record.eio_sid
        self.flag(record.ts, F.UNLISTENED_EVENT, "name",
                  f"the server sent {record.name!r} to {who}, but {profile.name}'s dashboard only "
                  f"listens to: {listens}; it is delivered and silently ignored",
                  f"emit one of the listened names (field 'listens') instead of "
                  f"{record.name!r}, or add a listener for it to the dashboard",
                  record, listens=sorted(profile.listens))

    def announce(self, group: Group) -> None:
        if group.announced:
            return
        group.announced = True
        if len(group.recipients) < 2:
            return
        self.groups.compute_missed(group)
        self.groups.broadcasts += 1
        self.groups.record_room(group)
        spread = max(group.recipients.values()) - group.first
        self.emit(Record(event=model.BROADCAST, ts=group.first, nsp=group.nsp, name=group.name,
                         args=group.args, size=group.size,
                         extra={"recipients": list(group.recipients), "missed": group.missed,
                                "count": len(group.recipients), "everyone": group.everyone,
                                "spread_ms": round(spread * 1000, 2)}))

    def finalize(self, group: Group) -> None:
        self.announce(group)
        if len(group.recipients) < 2:
            return
        still = [sid for sid in group.missed if sid not in group.late]
        if not still:
            return
        profile = self.profile
        if profile is not None and not profile.rooms and profile.nsp in (None, group.nsp):
            flagged = [sid for sid in still if not self._is_hook(sid)]
            reason = f"{profile.name} has no rooms: every client on {group.nsp} gets every event"
        else:
            usual = self.groups.usual_recipients(group)
            flagged = [sid for sid in still if sid in usual]
            reason = "they received this event name together with these recipients before"
        if not flagged:
            return
        labels = [self.sessions.label(sid) for sid in flagged]
        self.flag(group.first + self.groups.lifetime, F.PARTIAL_BROADCAST, "missed",
                  f"{group.name!r} on {group.nsp} reached {len(group.recipients)} clients but not "
                  f"{', '.join(labels)}, connected on {group.nsp} at the time ({reason})",
                  "the server skipped connected clients: check the emit's room/to=/skip_sid and "
                  "whether those clients joined the room", None, nsp=group.nsp,
                  name=group.name, dir="out",
                  dedupe=(group.nsp, group.name, tuple(flagged)), missed=flagged,
                  recipients=list(group.recipients))

    def _is_hook(self, sid: str) -> bool:
        session = self.sessions.known(sid)
        return session is not None and session.role() == "hook"
