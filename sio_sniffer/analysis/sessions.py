"""Who is connected: one :class:`Session` per Engine.IO sid, across transports and the upgrade.

A session knows its TCP connections, its transport, the namespaces it joined (with the Socket.IO
sid of each), where it came from, its heartbeat settings, and enough counters to guess its role:
a client that only sends is a ``hook``, one that only receives is a ``dashboard``, anything else a
``client`` (a ``[[role]]`` rule overrides the guess). Closed sessions stay in a small table for a
while so that a ``lost`` event can be blamed on "the receiver was reconnecting".
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sio_sniffer.analysis.config import RoleRule
from sio_sniffer.model import Record

BROWSER_MARKERS = ("Mozilla/", "Chrome/", "Safari/", "Firefox/")


# The close reason of a session the server answered 400 for (it does not know the sid).
REFUSED_400 = "the server answered 400 for it"


@dataclass(slots=True)
class NspState:
    """A namespace a session asked for: pending, connected (with sid) or refused."""

    since: float
    state: str  # "pending", "connected", "refused"
    sio_sid: str | None = None
    auth: str | None = None
    auth_keys: tuple[str, ...] = ()
    message: str | None = None


@dataclass(slots=True)
class Session:
    """One Engine.IO session as seen through the proxy."""

    eio_sid: str
    opened: float
    transport: str | None = None
    eio: int = 4
    peer: str | None = None
    user_agent: str | None = None
    ping_interval: float = 0.0  # seconds, as advertised in the handshake
    ping_timeout: float = 0.0
    max_payload: int | None = None
    conns: list[str] = field(default_factory=list)
    ws_conn: str | None = None
    upgraded: bool = False
    upgrade_started: float | None = None
    # When the probe WebSocket closed before the upgrade, and how: judged once the session has
    # had time to end on its own (a client closing the session closes its probe too).
    probe_closed: float | None = None
    probe_cause: str | None = None
    nsps: dict[str, NspState] = field(default_factory=dict)
    events_in: int = 0
    events_out: int = 0
    last_in: float | None = None
    last_out: float | None = None
    last_ping: float | None = None
    ping_gap: float = 0.0  # observed time between the last two pings
    awaiting_pong: bool = False
    last_pong: float | None = None
    last_request: float | None = None  # last Engine.IO HTTP request seen (polling liveness)
    ping_flagged: bool = False
    ping_check_due: bool = False  # one pending timer each, rescheduled instead of stacked
    pong_check_due: bool = False
    closed: float | None = None
    close_reason: str | None = None  # REFUSED_400 when the server disowned the session
    client_closed: float | None = None  # when the client itself ended the session
    # The last payload key delivered per (nsp, name), with ``events_in`` at the time: a repeat
    # is a duplicate only when nothing else of that name went out in between (a counter going
    # 1, 2, 1 is not a duplicate) and no event came in from the client (a retry, or a new
    # request, that the server answers the same way again).
    last_keys: dict[tuple[str | None, str | None], tuple[Any, int]] = field(default_factory=dict)
    role_rule: str | None = None
    role_checked: int = -1

    @property
    def browser(self) -> bool:
        return bool(self.user_agent) and any(m in (self.user_agent or "")
                                             for m in BROWSER_MARKERS)

    def connected(self, nsp: str) -> bool:
        state = self.nsps.get(nsp)
        return state is not None and state.state == "connected"

    def role(self) -> str:
        if self.role_rule:
            return self.role_rule
        if self.events_in and not self.events_out:
            return "hook"
        if not self.events_in:
            return "dashboard"
        return "client"

    def label(self) -> str:
        """``sid (role, peer)``: how flags name a client to a person."""
        bits = [self.role()]
        if self.peer:
            bits.append(self.peer)
        if self.browser:
            bits.append("browser")
        return f"{self.eio_sid} ({', '.join(bits)})"

    def describe(self) -> dict[str, Any]:
        return {
            "eio_sid": self.eio_sid,
            "role": self.role(),
            "transport": self.transport,
            "peer": self.peer,
            "user_agent": self.user_agent,
            "nsps": {n: s.sio_sid for n, s in self.nsps.items() if s.state == "connected"},
            "events_in": self.events_in,
            "events_out": self.events_out,
            "open": self.closed is None,
        }


class SessionTable:
    """Open sessions (bounded, oldest evicted) and recently closed ones (bounded)."""

    def __init__(self, max_open: int, max_closed: int, roles: Sequence[RoleRule]) -> None:
        self.open: OrderedDict[str, Session] = OrderedDict()
        self.closed: OrderedDict[str, Session] = OrderedDict()
        self.by_conn: OrderedDict[str, str] = OrderedDict()
        self.max_open = max_open
        self.max_closed = max_closed
        self.roles = tuple(roles)
        self.evicted = 0
        self.total = 0

    def get(self, eio_sid: str | None) -> Session | None:
        if eio_sid is None:
            return None
        return self.open.get(eio_sid)

    def known(self, eio_sid: str | None) -> Session | None:
        if eio_sid is None:
            return None
        return self.open.get(eio_sid) or self.closed.get(eio_sid)

    def sid_for_conn(self, conn: str | None) -> str | None:
        return self.by_conn.get(conn) if conn is not None else None

    def for_record(self, record: Record) -> Session | None:
        """The open session a record belongs to; created for sids first seen mid-session."""
        sid = record.eio_sid or self.sid_for_conn(record.conn)
        if sid is None:
            return None
        session = self.get(sid)
        if session is None and self.known(sid) is None:
            session = self.open_session(sid, record.ts)
            session.transport = record.transport
            self.attach_conn(session, record.conn)
        return session

    def label(self, eio_sid: str | None) -> str:
        """How flags name the client ``eio_sid`` (the bare sid once it is forgotten)."""
        session = self.known(eio_sid)
        return session.label() if session else str(eio_sid)

    def open_session(self, eio_sid: str, ts: float) -> Session:
        session = self.open.get(eio_sid)
        if session is None:
            session = self.closed.pop(eio_sid, None) or Session(eio_sid=eio_sid, opened=ts)
            session.closed = None
            self.open[eio_sid] = session
            self.total += 1
            while len(self.open) > self.max_open:
                _, old = self.open.popitem(last=False)
                self.evicted += 1
                self._retire(old)
        return session

    def attach_conn(self, session: Session, conn: str | None) -> None:
        if conn is None:
            return
        self.by_conn[conn] = session.eio_sid
        self.by_conn.move_to_end(conn)
        while len(self.by_conn) > self.max_open * 4:
            self.by_conn.popitem(last=False)
        if conn not in session.conns:
            session.conns.append(conn)
            del session.conns[:-4]

    def drop_conn(self, conn: str) -> None:
        self.by_conn.pop(conn, None)

    def close(self, session: Session, ts: float, reason: str | None) -> None:
        if session.closed is not None:
            return
        session.closed = ts
        session.close_reason = reason
        self.open.pop(session.eio_sid, None)
        self._retire(session)

    def _retire(self, session: Session) -> None:
        for conn in session.conns:
            if self.by_conn.get(conn) == session.eio_sid:
                del self.by_conn[conn]
        self.closed[session.eio_sid] = session
        self.closed.move_to_end(session.eio_sid)
        while len(self.closed) > self.max_closed:
            self.closed.popitem(last=False)

    def apply_roles(self, session: Session) -> None:
        """Set the session's role from the first matching ``[[role]]`` rule, if any."""
        if not self.roles or session.role_checked == len(session.nsps):
            return
        session.role_checked = len(session.nsps)
        for rule in self.roles:
            if rule.matches(session.user_agent, session.peer, list(session.nsps)):
                session.role_rule = rule.role
                return

    def on_nsp(self, nsp: str) -> Iterator[Session]:
        """Open sessions connected on ``nsp``."""
        return (s for s in self.open.values() if s.connected(nsp))
