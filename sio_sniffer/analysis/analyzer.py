"""The analyzer: reads every record in order and says where the event flow breaks.

The Sniffer calls :meth:`Analyzer.feed` for each record (cheap: one dict dispatch and a few table
updates; payload walks only when an expectation is open), :meth:`Analyzer.tick` every ~100 ms with
the wall clock (deadlines fire there, and also whenever a record's timestamp passes them, so a
capture replays the same way without ticks), :meth:`Analyzer.rooms` on demand and
:meth:`Analyzer.finish` at exit. Results leave through ``emit`` as ``broadcast``, ``flag``,
``rooms`` and ``summary`` records. Every table is bounded by :class:`AnalysisConfig`.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sio_sniffer import model
from sio_sniffer.analysis import payload
from sio_sniffer.analysis.broadcasts import Group, Groups
from sio_sniffer.analysis.config import AnalysisConfig
from sio_sniffer.analysis.correlate import Correlator, Expectation, rule_key
from sio_sniffer.analysis.sessions import NspState, Session, SessionTable
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F

Emit = Callable[[Record], None]
# How many distinctive scalars of an ingested payload are offered to the correlator, which
# indexes the expectation under the least shared of them.
ANCHOR_CHOICES = 8
NAMESPACE_LOOKBACK = 60.0


@dataclass(slots=True)
class Emission:
    """An outgoing event as first delivered: the candidates a lost event is compared with."""

    ts: float
    nsp: str | None
    name: str | None
    args: Any
    recipient: str | None
    pairs: frozenset[tuple[str, Any]] | None = None


@dataclass(slots=True)
class Sid400:
    """A session the server answered 400 for, waiting to be judged: restarted or two servers."""

    first: float
    count: int = 1
    alive_after: int = 0
    known: bool = False
    record: Record | None = None


class Latencies:
    """The last N samples of a latency, for percentiles in the summary (bounded)."""

    def __init__(self, size: int) -> None:
        self.samples: deque[float] = deque(maxlen=size)
        self.count = 0

    def add(self, value: float) -> None:
        self.samples.append(value)
        self.count += 1

    def describe(self) -> dict[str, Any]:
        if not self.samples:
            return {"count": self.count}
        ordered = sorted(self.samples)

        def pct(p: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)

        return {"count": self.count, "p50_ms": pct(0.5), "p95_ms": pct(0.95),
                "max_ms": round(ordered[-1] * 1000, 2)}


class Analyzer:
    """Sessions, broadcasts, rooms, ack pairing, in→out correlation and flags."""

    def __init__(self, config: AnalysisConfig, emit: Emit) -> None:
        self.config = config
        self.emit = emit
        self.profile = config.profile
        self.ingest_paths = tuple(p.rstrip("/") for p in config.effective_ingest_paths())
        self.slow_ms = config.effective_slow_ingest_ms()
        self.max_body = config.effective_ingest_max_body()
        self.sessions = SessionTable(config.max_sessions, config.max_closed_sessions,
                                     config.all_roles())
        self.correlator = Correlator(config.all_rules(), config.max_expectations)
        lifetime = max(config.broadcast_window, config.duplicate_window, config.deadline)
        self.groups = Groups(config.broadcast_window, lifetime, config.max_groups,
                             config.max_rooms, self.sessions)
        self.timers: list[tuple[float, int, str, Any]] = []
        self.timer_seq = 0
        self.pending_connects: OrderedDict[tuple[str, str], Record] = OrderedDict()
        self.pending_acks: OrderedDict[tuple[str | None, str | None, int, str], Record] = (
            OrderedDict())
        self.sid400: OrderedDict[str, Sid400] = OrderedDict()
        self.recent: deque[Emission] = deque(maxlen=config.max_recent_emits)
        self.server_nsps: OrderedDict[str, None] = OrderedDict()
        self.relaying: OrderedDict[tuple[str | None, str | None], None] = OrderedDict()
        self.unrelayed: Counter[str] = Counter()
        self.hooks: OrderedDict[tuple[str, str], int] = OrderedDict()
        self.flag_last: OrderedDict[tuple[Any, ...], float] = OrderedDict()
        self.unlistened: OrderedDict[tuple[str | None, str], int] = OrderedDict()
        self.now = 0.0
        # The earliest time anything (broadcast window, expectation deadline, timer) can fall
        # due: records before it skip the deadline checks, which every record used to run.
        self.wake = math.inf
        self.started: float | None = None
        self.counts: Counter[str] = Counter()
        self.flag_counts: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()
        self.lost_causes: Counter[str] = Counter()
        self.ingest_status: Counter[str] = Counter()
        self.ingest_latency = Latencies(config.latency_samples)
        self.relay_latency = Latencies(config.latency_samples)
        self.ack_latency = Latencies(config.latency_samples)
        self.acks_missing = 0
        self.acks_unmatched = 0
        self.expectations_opened = 0
        self.expectations_matched = 0
        self.evicted_pending = 0
        self.finished = False
        self.handlers: dict[str, Callable[[Record], None]] = {
            model.EIO_OPEN: self._eio_open,
            model.EIO_UPGRADE: self._eio_upgrade,
            model.EIO_CLOSE: self._eio_close,
            model.EIO_PING: self._eio_ping,
            model.EIO_PONG: self._eio_pong,
            model.WS_OPEN: self._ws_open,
            model.WS_CLOSE: self._ws_close,
            model.CONN_CLOSE: self._conn_close,
            model.SIO_CONNECT: self._sio_connect,
            model.SIO_CONNECT_OK: self._sio_connect_ok,
            model.SIO_CONNECT_ERROR: self._sio_connect_error,
            model.SIO_DISCONNECT: self._sio_disconnect,
            model.SIO_EVENT: self._sio_event,
            model.SIO_ACK: self._sio_ack,
            model.HTTP_REQUEST: self._http_request,
            model.HTTP: self._http,
            model.DECODE_ERROR: self._decode_error,
        }

    def feed(self, record: Record) -> None:
        """Take one record (in order). Never raises on odd records: they are observations."""
        if self.started is None:
            self.started = record.ts
        if record.ts > self.now:
            if record.ts >= self.wake:
                self._advance(record.ts)
            else:
                self.now = record.ts
        self.counts[record.event] += 1
        if self.sid400 and record.eio_sid in self.sid400:
            self._alive_after_400(record)
        handler = self.handlers.get(record.event)
        if handler is not None:
            handler(record)

    def tick(self, now: float) -> None:
        """Fire every deadline that has passed by ``now`` (wall clock, seconds since the epoch)."""
        if now > self.now:
            self._advance(now)

    def rooms(self) -> list[dict[str, Any]]:
        """Inferred rooms: sets of clients the server addressed together, most used first."""
        return self.groups.describe_rooms()

    def finish(self, now: float) -> None:
        """Judge what is due, announce open groups, then emit the rooms and a summary."""
        if self.finished:
            return
        self.finished = True
        self.tick(now)
        for group in list(self.groups.live.values()):
            self._announce(group)
        self.emit(Record(event=model.ROOMS, ts=now, extra={"rooms": self.rooms()}))
        self.emit(Record(event=model.SUMMARY, ts=now, extra=self.summary()))

    def summary(self) -> dict[str, Any]:
        """Counters and latencies so far (what ``finish`` emits as the summary record)."""
        roles: Counter[str] = Counter(s.role() for s in self.sessions.open.values())
        closed_roles: Counter[str] = Counter(s.role() for s in self.sessions.closed.values())
        notes = []
        if (self.ingest_paths and not self.hooks and self.profile is not None
                and roles.get("dashboard")):
            notes.append(f"dashboards were connected but no POST reached "
                         f"{', '.join(self.ingest_paths)}: are the hooks installed and pointed at "
                         f"this proxy's port?")
        return {
            "duration_s": round(self.now - self.started, 3) if self.started else 0.0,
            "records": sum(self.counts.values()),
            "record_kinds": dict(self.counts.most_common(20)),
            "sessions": {"total": self.sessions.total, "open": len(self.sessions.open),
                         "open_by_role": dict(roles), "recently_closed_by_role": dict(closed_roles),
                         "evicted": self.sessions.evicted},
            "hooks": [{"peer": host, "user_agent": ua, "posts": n}
                      for (host, ua), n in list(self.hooks.items())[-10:]],
            "ingest": {"status": dict(self.ingest_status), **self.ingest_latency.describe()},
            "expectations": {"opened": self.expectations_opened,
                             "matched": self.expectations_matched,
                             "lost": self.flag_counts.get(F.LOST, 0),
                             "open_at_exit": len(self.correlator.open),
                             "dropped_table_full": self.correlator.dropped,
                             "lost_by_cause": dict(self.lost_causes),
                             "client_events_never_relayed": dict(self.unrelayed.most_common(10)),
                             "relay_latency": self.relay_latency.describe()},
            "acks": {"paired": self.ack_latency.count, "missing": self.acks_missing,
                     "unmatched": self.acks_unmatched, **self.ack_latency.describe()},
            "broadcasts": self.groups.broadcasts,
            "rooms": len(self.groups.rooms),
            "flags": dict(self.flag_counts),
            "flags_suppressed": dict(self.suppressed),
            "unlistened": [{"nsp": nsp, "name": name, "count": n}
                           for (nsp, name), n in self.unlistened.items()],
            "evicted": {"groups": self.groups.evicted, "pending": self.evicted_pending},
            "notes": notes,
        }


    def _advance(self, now: float) -> None:
        self.now = now
        for group in self.groups.due_announce(now):
            self._announce(group)
        for group in self.groups.due_expire(now):
            self._finalize(group)
        if self.correlator.deadlines and self.correlator.deadlines[0][0] <= now:
            for exp in self.correlator.due(now):
                self._judge_lost(exp, exp.deadline)
        while self.timers and self.timers[0][0] <= now:
            due, _, kind, key = heapq.heappop(self.timers)
            self._timer(kind, key, due)
        self.wake = min(self.groups.next_due(), self.correlator.next_due(),
                        self.timers[0][0] if self.timers else math.inf)

    def _wake_by(self, due: float) -> None:
        """Something falls due at ``due``: records from then on run the deadlines again."""
        if due < self.wake:
            self.wake = due

    def _schedule(self, due: float, kind: str, key: Any) -> None:
        self.timer_seq += 1
        heapq.heappush(self.timers, (due, self.timer_seq, kind, key))
        self._wake_by(due)
        if len(self.timers) > 4 * self.config.max_pending + 1024:
            self._compact_timers()

    def _compact_timers(self) -> None:
        """Drop timers whose pending entry is already gone (answered or evicted)."""
        def live(kind: str, key: Any) -> bool:
            if kind == "connect":
                return key[0] in self.pending_connects
            if kind == "ack":
                return key[0] in self.pending_acks
            if kind in ("ping", "pong"):
                return key in self.sessions.open
            if kind == "upgrade":
                return key[0] in self.sessions.open
            return True

        self.timers = [t for t in self.timers if live(t[2], t[3])]
        heapq.heapify(self.timers)

    def _timer(self, kind: str, key: Any, due: float) -> None:
        if kind == "connect":
            self._connect_due(key, due)
        elif kind == "ack":
            self._ack_due(key, due)
        elif kind == "pong":
            self._pong_due(key, due)
        elif kind == "ping":
            self._ping_due(key, due)
        elif kind == "upgrade":
            self._upgrade_due(key, due)
        elif kind == "sid400":
            self._sid400_due(key, due)


    def _flag(self, ts: float, kind: str, code: str, cause: str, hint: str,
              where: Record | None = None, dedupe: tuple[Any, ...] | None = None,
              **fields: Any) -> None:
        if dedupe is not None:
            key = (kind, *dedupe)
            last = self.flag_last.get(key)
            if last is not None and ts - last < self.config.flag_repeat:
                self.suppressed[kind] += 1
                return
            self.flag_last[key] = ts
            self.flag_last.move_to_end(key)
            while len(self.flag_last) > 1024:
                self.flag_last.popitem(last=False)
        self.flag_counts[kind] += 1
        self.emit(F.make_flag(ts, kind, code, cause, hint, where, **fields))


    def _session(self, record: Record) -> Session | None:
        """The open session a record belongs to; created for sids first seen mid-session."""
        sid = record.eio_sid or self.sessions.sid_for_conn(record.conn)
        if sid is None:
            return None
        session = self.sessions.get(sid)
        if session is None and self.sessions.known(sid) is None:
            session = self.sessions.open_session(sid, record.ts)
            session.transport = record.transport
            self.sessions.attach_conn(session, record.conn)
        return session

    def _eio_open(self, record: Record) -> None:
        if record.eio_sid is None:
            return
        session = self.sessions.open_session(record.eio_sid, record.ts)
        session.transport = record.transport
        session.eio = int(record.get("eio") or 4)
        session.peer = record.get("peer") or session.peer
        session.user_agent = record.get("user_agent") or session.user_agent
        session.ping_interval = float(record.get("ping_interval") or 0) / 1000
        session.ping_timeout = float(record.get("ping_timeout") or 0) / 1000
        max_payload = record.get("max_payload")
        session.max_payload = int(max_payload) if max_payload else None
        self.sessions.attach_conn(session, record.conn)
        if record.transport == "websocket":
            session.ws_conn = record.conn
        self.sessions.apply_roles(session)
        self._schedule_ping_check(session, record.ts)

    def _eio_upgrade(self, record: Record) -> None:
        session = self._session(record)
        if session is not None:
            session.upgraded = True
            session.transport = "websocket"
            if record.conn is not None:
                session.ws_conn = record.conn
                self.sessions.attach_conn(session, record.conn)

    def _eio_close(self, record: Record) -> None:
        session = self._session(record)
        if session is not None:
            self._close_session(session, record.ts, record.get("reason") or "closed", record)

    def _close_session(self, session: Session, ts: float, reason: str,
                       where: Record | None) -> None:
        # A peer that gives up on heartbeats closes the session right at the limit, often
        # before our own (graced) timers fire: judge the heartbeat at close time too.
        if not session.ping_flagged and session.ping_interval > 0:
            if session.awaiting_pong and session.last_ping is not None:
                # python-engineio counts pingTimeout from before the ping is written: its close
                # comes slightly early, so a close near the limit with no pong is the client's.
                timeout = session.ping_timeout or self.config.ping_grace
                if ts - session.last_ping >= 0.8 * timeout:
                    self._ping_flag(session, ts, silent="answerer")
            else:
                last = session.last_ping if session.last_ping is not None else session.opened
                if ts - last >= 0.95 * (session.ping_interval + session.ping_timeout):
                    self._ping_flag(session, ts, silent="pinger")
        self.sessions.close(session, ts, reason)

    def _ws_open(self, record: Record) -> None:
        sid = record.eio_sid
        session = self.sessions.get(sid) if sid else None
        if session is None:
            return
        self.sessions.attach_conn(session, record.conn)
        if session.transport == "polling" and not session.upgraded:
            session.upgrade_started = record.ts
            session.ws_conn = record.conn
            self._schedule(record.ts + self.config.deadline, "upgrade",
                           (session.eio_sid, record.ts))

    def _ws_close(self, record: Record) -> None:
        session = self._session(record)
        if session is None or record.conn != session.ws_conn:
            return
        code = record.get("code")
        if not session.upgraded and session.upgrade_started is not None:
            self._upgrade_failed(session, record.ts, f"the WebSocket closed (code {code}) "
                                 "before the upgrade completed", record)
            session.ws_conn = None
        elif session.upgraded or session.transport == "websocket":
            self._close_session(session, record.ts, f"websocket closed (code {code})", record)

    def _conn_close(self, record: Record) -> None:
        if record.conn is None:
            return
        sid = self.sessions.sid_for_conn(record.conn)
        session = self.sessions.get(sid)
        if session is not None and record.conn == session.ws_conn:
            if session.upgraded or session.transport == "websocket":
                self._close_session(session, record.ts,
                                    f"connection closed by {record.get('by')}", record)
            elif session.upgrade_started is not None:
                self._upgrade_failed(session, record.ts, "the connection carrying the WebSocket "
                                     f"closed (by {record.get('by')}) before the upgrade", record)
                session.ws_conn = None
        self.sessions.drop_conn(record.conn)

    def _upgrade_due(self, key: tuple[str, float], due: float) -> None:
        session = self.sessions.get(key[0])
        if session is None or session.upgraded or session.upgrade_started != key[1]:
            return
        self._upgrade_failed(session, due, f"no upgrade within {self.config.deadline:g} s of the "
                             "WebSocket opening (probe unanswered?)", None)

    def _upgrade_failed(self, session: Session, ts: float, cause: str,
                        where: Record | None) -> None:
        session.upgrade_started = None
        self._flag(ts, F.UPGRADE_FAILED, "upgrade", f"{session.label()}: {cause}",
                   "the client stays on polling: check that WebSocket upgrades reach the server "
                   "(Upgrade/Connection headers, no proxy in between dropping them)",
                   where, eio_sid=session.eio_sid, transport="websocket")


    def _ping_limit(self, session: Session) -> float | None:
        """How long after a ping the next one is overdue, or None if the interval is unknown."""
        interval = session.ping_interval or session.ping_gap
        if interval <= 0:
            return None
        return interval + session.ping_timeout + self.config.ping_grace

    def _pong_limit(self, session: Session) -> float:
        return (session.ping_timeout or session.ping_gap or 0.0) + self.config.ping_grace

    def _schedule_ping_check(self, session: Session, ts: float) -> None:
        limit = self._ping_limit(session)
        if limit is not None and not session.ping_check_due:
            session.ping_check_due = True
            self._schedule(ts + limit, "ping", session.eio_sid)

    def _eio_ping(self, record: Record) -> None:
        session = self._session(record)
        if session is None or record.args == "probe" or record.get("probe"):
            return
        if session.last_ping is not None:
            session.ping_gap = record.ts - session.last_ping
        session.last_ping = record.ts
        session.awaiting_pong = True
        if not session.pong_check_due:
            session.pong_check_due = True
            self._schedule(record.ts + self._pong_limit(session), "pong", session.eio_sid)
        self._schedule_ping_check(session, record.ts)

    def _eio_pong(self, record: Record) -> None:
        session = self._session(record)
        if session is None or record.args == "probe" or record.get("probe"):
            return
        session.awaiting_pong = False
        session.last_pong = record.ts

    def _pong_due(self, sid: str, due: float) -> None:
        session = self.sessions.get(sid)
        if session is None:
            return
        session.pong_check_due = False
        if not session.awaiting_pong or session.ping_flagged or session.last_ping is None:
            return
        overdue = session.last_ping + self._pong_limit(session)
        if due < overdue:
            session.pong_check_due = True
            self._schedule(overdue, "pong", sid)
            return
        self._ping_flag(session, due, silent="answerer")

    def _ping_due(self, sid: str, due: float) -> None:
        session = self.sessions.get(sid)
        if session is None:
            return
        session.ping_check_due = False
        limit = self._ping_limit(session)
        if session.ping_flagged or limit is None:
            return
        last = session.last_ping if session.last_ping is not None else session.opened
        if due < last + limit:
            session.ping_check_due = True
            self._schedule(last + limit, "ping", sid)
            return
        self._ping_flag(session, due, silent="pinger")

    def _ping_flag(self, session: Session, ts: float, silent: str) -> None:
        """``silent`` is the side that failed: the one that pings, or the one that answers."""
        session.ping_flagged = True
        pinger, answerer = ("server", "client") if session.eio >= 4 else ("client", "server")
        side = pinger if silent == "pinger" else answerer
        limit = session.ping_interval + session.ping_timeout
        last_pong = session.last_pong if session.last_pong is not None else session.opened
        gap = ts - (session.last_ping if silent == "pinger" and session.last_ping else last_pong)
        if silent == "answerer":
            cause = (f"{session.label()}: the {side} did not answer the ping sent at "
                     f"{model.iso_ts(session.last_ping or ts)} within pingTimeout "
                     f"{session.ping_timeout:g} s; silent for {gap:.1f} s (limit "
                     f"pingInterval+pingTimeout = {limit:g} s)")
            hint = (f"the {side} stopped answering pings: its event loop is blocked or the "
                    "network dropped; keep its loop free or raise ping_timeout")
        else:
            cause = (f"{session.label()}: no ping from the {side} for {gap:.1f} s, above "
                     f"pingInterval+pingTimeout = {limit:g} s")
            hint = (f"the {side} stopped pinging: look for a blocked event loop on the {side}")
            if session.transport == "polling" and side == "server":
                cause += "; on polling the client fetches pings with its GET"
                hint = ("either the client stopped polling or the server stopped pinging: check "
                        "whether the client is still alive, then the server's event loop")
        self._flag(ts, F.PING_TIMEOUT, f"{side}_silent", cause, hint, None,
                   eio_sid=session.eio_sid, transport=session.transport, side=side,
                   gap_s=round(gap, 3), limit_s=limit)


    def _sio_connect(self, record: Record) -> None:
        session = self._session(record)
        if session is None or record.nsp is None:
            return
        auth = record.get("auth")
        session.nsps[record.nsp] = NspState(since=record.ts, state="pending", auth=auth,
                                            auth_keys=tuple(record.get("auth_keys") or ()))
        key = (session.eio_sid, record.nsp)
        self.pending_connects[key] = record
        self.pending_connects.move_to_end(key)
        self._bound(self.pending_connects)
        self._schedule(record.ts + self.config.connect_deadline, "connect", (key, record.ts))

    def _connect_due(self, key: tuple[tuple[str, str], float], due: float) -> None:
        pending_key, since = key
        record = self.pending_connects.get(pending_key)
        if record is None or record.ts != since:
            return
        del self.pending_connects[pending_key]
        session = self.sessions.known(pending_key[0])
        auth = record.get("auth")
        who = session.label() if session else pending_key[0]
        if auth:
            keys = ", ".join(record.get("auth_keys") or ()) or "?"
            cause = (f"{who}: CONNECT to {record.nsp} with an auth payload (keys: {keys}) got no "
                     f"answer within {self.config.connect_deadline:g} s")
            hint = ("the server's connect handler fails when given auth (claude-mpm's handler "
                    "takes no auth argument and raises): connect without auth, or accept auth in "
                    "the handler")
        else:
            cause = (f"{who}: CONNECT to {record.nsp} got no answer within "
                     f"{self.config.connect_deadline:g} s")
            hint = ("the server's connect handler never returned: look for an exception or a "
                    "blocking call in it")
        self._flag(due, F.CONNECT_UNANSWERED, "auth" if auth else "no_answer", cause, hint,
                   record, auth=auth)

    def _sio_connect_ok(self, record: Record) -> None:
        session = self._session(record)
        if record.nsp is None:
            return
        self.server_nsps[record.nsp] = None
        self._bound(self.server_nsps, 64)
        if session is None:
            return
        self.pending_connects.pop((session.eio_sid, record.nsp), None)
        state = session.nsps.get(record.nsp)
        if state is None:
            state = NspState(since=record.ts, state="connected")
            session.nsps[record.nsp] = state
        state.state = "connected"
        state.since = record.ts
        state.sio_sid = record.sio_sid
        self.sessions.apply_roles(session)

    def _sio_connect_error(self, record: Record) -> None:
        session = self._session(record)
        nsp = record.nsp or "/"
        message = record.get("message")
        if session is not None:
            self.pending_connects.pop((session.eio_sid, nsp), None)
            state = session.nsps.setdefault(nsp, NspState(since=record.ts, state="refused"))
            state.state = "refused"
            state.message = None if message is None else str(message)
        known = [n for n in self.server_nsps if n != nsp]
        text = str(message) if message is not None else "no message"
        if known:
            hint = (f"the server accepts {', '.join(known)}: connect the client there, or register "
                    f"namespace {nsp} on the server")
        elif nsp != "/" and ("namespace" in text.lower() or "unable to connect" in text.lower()):
            hint = (f"the server has no namespace {nsp}: connect the client to '/' or register "
                    f"{nsp} on the server")
        else:
            hint = "the server refused the connection: check its connect handler / auth conditions"
        who = session.label() if session else record.eio_sid
        self._flag(record.ts, F.CONNECT_ERROR, "refused",
                   f"{who}: the server refused CONNECT to {nsp}: {text!r}", hint, record,
                   dedupe=(nsp, text), message=message)

    def _sio_disconnect(self, record: Record) -> None:
        session = self._session(record)
        if session is not None and record.nsp is not None:
            session.nsps.pop(record.nsp, None)

    def _sio_event(self, record: Record) -> None:
        session = self._session(record)
        if (session is not None and session.max_payload and record.size is not None
                and record.size > session.max_payload):
            self._flag(record.ts, F.PAYLOAD_TOO_LARGE, "max_payload",
                       f"{session.label()}: event {record.name!r} is {record.size} bytes, "
                       f"above the handshake's maxPayload {session.max_payload}",
                       "raise the server's max_http_buffer_size / maxHttpBufferSize, or send "
                       "smaller events (the server drops the connection otherwise)", record,
                       size=record.size, max_payload=session.max_payload)
        if record.ack_id is not None:
            key = (record.eio_sid, record.nsp, record.ack_id, record.dir or "?")
            self.pending_acks[key] = record
            self._bound(self.pending_acks)
            self._schedule(record.ts + self.config.ack_deadline, "ack", (key, record.ts))
        if record.dir == "in":
            if session is not None:
                session.events_in += 1
                session.last_in = record.ts
            self._open_event_expectation(record)
        elif record.dir == "out":
            self._out_event(record, session)

    def _sio_ack(self, record: Record) -> None:
        if record.ack_id is None:
            return
        asked = "out" if record.dir == "in" else "in"
        key = (record.eio_sid, record.nsp, record.ack_id, asked)
        event = self.pending_acks.pop(key, None)
        if event is None:
            self.acks_unmatched += 1
            return
        self.ack_latency.add(max(0.0, record.ts - event.ts))

    def _ack_due(self, key: tuple[tuple[str | None, str | None, int, str], float],
                 due: float) -> None:
        pending_key, since = key
        record = self.pending_acks.get(pending_key)
        if record is None or record.ts != since:
            return
        del self.pending_acks[pending_key]
        self.acks_missing += 1
        asker, answerer = ("client", "server") if record.dir == "in" else ("server", "client")
        session = self.sessions.known(record.eio_sid)
        who = session.label() if session else record.eio_sid
        self._flag(due, F.ACK_MISSING, f"{answerer}_no_ack",
                   f"{who}: the {asker} sent {record.name!r} with ack id {record.ack_id} and got "
                   f"no ACK within {self.config.ack_deadline:g} s",
                   f"the {answerer}'s handler for {record.name!r} never acknowledged: return a "
                   "value from the handler (python-socketio) or call the callback (JS)", record)

    def _decode_error(self, record: Record) -> None:
        layer = record.get("layer") or "?"
        self._flag(record.ts, F.DECODE_ERROR, str(layer),
                   f"could not decode {layer} {record.dir or ''} data: {record.get('reason')} "
                   f"(offset {record.get('offset')})",
                   "the peers may disagree on the parser (msgpack vs JSON) or the protocol version "
                   "(EIO=3 vs 4); the traffic was forwarded untouched", record,
                   dedupe=(record.eio_sid or record.conn, layer, record.get("reason")),
                   reason=record.get("reason"))


    def _out_event(self, record: Record, session: Session | None) -> None:
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
            repeat = session.last_keys.get(stream) == key
            session.last_keys[stream] = key
            if len(session.last_keys) > 32:
                del session.last_keys[next(iter(session.last_keys))]
        group = self.groups.get(key)
        if group is not None and recipient is not None:
            previous = group.recipients.get(recipient)
            if previous is not None:
                if repeat and record.ts - previous <= self.config.duplicate_window:
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
            self._finalize(self.groups.replace(group))
        group = self.groups.start(key, record.nsp, record.name, record.args, record.size,
                                  record.ts)
        self._wake_by(record.ts + min(self.groups.window, self.groups.lifetime))
        if recipient is not None:
            group.recipients[recipient] = record.ts
        for old in self.groups.overflow():
            self._finalize(old)
        self.recent.append(Emission(record.ts, record.nsp, record.name, record.args, recipient))
        if self.correlator.open:
            exp, echoed = self.correlator.match(record.nsp, record.name, record.args, record.ts,
                                                recipient)
            group.echo_ids = [e.id for e in echoed]
            if exp is not None:
                group.matched = True
                self._matched(exp, record)

    def _close_echoes(self, group: Group, recipient: str, record: Record) -> None:
        if not group.echo_ids:
            return
        remaining = []
        for exp_id in group.echo_ids:
            exp = self.correlator.open.get(exp_id)
            if exp is None:
                continue
            if exp.eio_sid == recipient:
                remaining.append(exp_id)
            else:
                self.correlator.remove(exp)
                self._matched(exp, record)
        group.echo_ids = remaining

    def _duplicate(self, record: Record, group: Group, session: Session | None, recipient: str,
                   previous: float) -> None:
        who = session.label() if session else recipient
        gap_ms = (record.ts - previous) * 1000
        self._flag(record.ts, F.DUPLICATE, "same_client",
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
        self._bound(self.unlistened, 256)
        listens = ", ".join(sorted(profile.listens))
        who = session.label() if session else record.eio_sid
        self._flag(record.ts, F.UNLISTENED_EVENT, "name",
                   f"the server sent {record.name!r} to {who}, but {profile.name}'s dashboard only "
                   f"listens to: {listens}; it is delivered and silently ignored",
                   f"emit one of the listened names (field 'listens') instead of "
                   f"{record.name!r}, or add a listener for it to the dashboard",
                   record, listens=sorted(profile.listens))

    def _announce(self, group: Group) -> None:
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

    def _finalize(self, group: Group) -> None:
        self._announce(group)
        if len(group.recipients) < 2:
            return
        still = [sid for sid in group.missed if sid not in group.late]
        if not still:
            return
        profile = self.profile
        if profile is not None and not profile.rooms and profile.nsp in (None, group.nsp):
            flagged = [sid for sid in still if self._role(sid) != "hook"]
            reason = f"{profile.name} has no rooms: every client on {group.nsp} gets every event"
        else:
            usual = self.groups.usual_recipients(group)
            flagged = [sid for sid in still if sid in usual]
            reason = "they received this event name together with these recipients before"
        if not flagged:
            return
        labels = [self._label(sid) for sid in flagged]
        self._flag(group.first + self.groups.lifetime, F.PARTIAL_BROADCAST, "missed",
                   f"{group.name!r} on {group.nsp} reached {len(group.recipients)} clients but not "
                   f"{', '.join(labels)}, connected on {group.nsp} at the time ({reason})",
                   "the server skipped connected clients: check the emit's room/to=/skip_sid and "
                   "whether those clients joined the room", None, nsp=group.nsp,
                   name=group.name, dir="out",
                   dedupe=(group.nsp, group.name, tuple(flagged)), missed=flagged,
                   recipients=list(group.recipients))

    def _role(self, sid: str) -> str | None:
        session = self.sessions.known(sid)
        return session.role() if session else None

    def _label(self, sid: str | None) -> str:
        session = self.sessions.known(sid)
        return session.label() if session else str(sid)


    def _is_ingest(self, record: Record) -> bool:
        path = record.get("path")
        return (record.get("method") == "POST" and isinstance(path, str)
                and (path.rstrip("/") in self.ingest_paths
                     or self.correlator.rule_for_http(path) is not None))

    def _http_request(self, record: Record) -> None:
        if not self._is_ingest(record):
            return
        peer = str(record.get("peer") or "?").rsplit(":", 1)[0]
        hook_key = (peer, str(record.get("user_agent") or "?"))
        self.hooks[hook_key] = self.hooks.get(hook_key, 0) + 1
        self.hooks.move_to_end(hook_key)
        self._bound(self.hooks, 256)
        body_size = record.get("body_size")
        if self.max_body is not None and isinstance(body_size, int) and body_size > self.max_body:
            self._flag(record.ts, F.PAYLOAD_TOO_LARGE, "ingest_body",
                       f"a POST to {record.get('path')} carries {body_size} bytes, above the "
                       f"ingest limit of {self.max_body} bytes",
                       "the server refuses bodies this big (aiohttp's default client_max_size is "
                       "1 MiB): raise the limit on the server or send smaller events", record,
                       size=body_size, limit=self.max_body)
        path = str(record.get("path"))
        rule = self.correlator.rule_for_http(path)
        self._open_expectation(record, "http", rule, path=path)

    def _http(self, record: Record) -> None:
        status = record.get("status")
        if not isinstance(status, int):
            return
        if record.get("engineio"):
            self._engineio_http(record, status)
            return
        if not self._is_ingest(record):
            return
        duration = record.get("duration_ms")
        self.ingest_status[str(status)] += 1
        exp = self.correlator.for_request(record.conn, record.get("seq"))
        if exp is not None:
            exp.status = status
            exp.duration_ms = duration
        path = record.get("path")
        if isinstance(duration, (int, float)):
            self.ingest_latency.add(duration / 1000)
        if not 200 <= status < 300:
            body = record.get("body")
            self._flag(record.ts, F.INGEST_REJECTED, str(status),
                       f"the server answered POST {path} with {status}"
                       + (f": {str(body)[:200]!r}" if body else ""),
                       _ingest_hint(status, path), record, dedupe=(path, status, record.conn),
                       status=status, body=body)
        if isinstance(duration, (int, float)) and duration > self.slow_ms:
            self._flag(record.ts, F.SLOW_INGEST, "slow",
                       f"the server took {duration:.0f} ms to answer POST {path}, above "
                       f"{self.slow_ms:g} ms",
                       f"answer the ingest first and relay in the background: a hook with a "
                       f"{self.slow_ms:g} ms timeout (claude-mpm's fast hook) gives up and the "
                       "event is lost", record, duration_ms=duration, limit_ms=self.slow_ms)

    def _engineio_http(self, record: Record, status: int) -> None:
        sid = record.eio_sid
        session = self.sessions.get(sid) if sid else None
        if session is not None:
            session.last_request = record.ts
        if sid is None or status < 400:
            return
        body = str(record.get("body") or "")
        req_bytes = record.get("req_bytes")
        # Node answers an oversize POST with 413; python-engineio with a plain 400, which must
        # not pass for an unknown session: the request size against the handshake's maxPayload
        # tells them apart.
        # (python-engineio may have closed the session by the time its answer passes)
        known = self.sessions.known(sid)
        limit = known.max_payload if known is not None else None
        oversize = limit is not None and isinstance(req_bytes, int) and req_bytes > limit
        if status == 413 or (status == 400 and oversize):
            self._flag(record.ts, F.PAYLOAD_TOO_LARGE, f"http_{status}",
                       f"the server refused a {req_bytes}-byte Engine.IO request with {status}"
                       + (f" (maxPayload {limit})" if oversize else ""),
                       "raise the server's max_http_buffer_size / maxHttpBufferSize "
                       "or send smaller events", record, status=status)
            return
        if status != 400:
            return
        session_unknown = "session" in body.lower() or self.sessions.known(sid) is not None
        if record.transport == "websocket" and not session_unknown:
            if session is not None:
                self._upgrade_failed(session, record.ts,
                                     f"the server answered the WebSocket request with {status}: "
                                     f"{body[:120]!r}", record)
            return
        if not session_unknown:
            return
        entry = self.sid400.get(sid)
        if entry is not None:
            entry.count += 1
            return
        self.sid400[sid] = Sid400(first=record.ts, known=self.sessions.known(sid) is not None,
                                  record=record)
        self._bound(self.sid400, 1024)
        self._schedule(record.ts + self.config.deadline, "sid400", sid)
        if session is not None:
            self._close_session(session, record.ts, "the server answered 400 for it", record)

    def _alive_after_400(self, record: Record) -> None:
        entry = self.sid400[record.eio_sid or ""]
        if record.ts <= entry.first:
            return
        if record.event == model.HTTP and isinstance(record.get("status"), int):
            if record.get("status") == 400:
                return
            entry.alive_after += 1
        elif record.dir == "out" and record.event in (model.EIO_PING, model.SIO_EVENT,
                                                      model.SIO_ACK, model.EIO_PONG):
            entry.alive_after += 1

    def _sid400_due(self, sid: str, due: float) -> None:
        entry = self.sid400.pop(sid, None)
        if entry is None:
            return
        session = self.sessions.known(sid)
        who = session.label() if session else sid
        if entry.alive_after:
            code = "two_servers"
            cause = (f"{who}: the server answered 400 (unknown session) {entry.count} time(s) "
                     "while other requests of the same session succeeded: two servers answer "
                     "on this port")
            hint = ("stop the second server on the port (reuse_port or port drift: check "
                    "`lsof -i :PORT`), or use sticky sessions behind a load balancer")
        elif entry.known:
            opened = session.opened if session else entry.first
            code = "restarted"
            cause = (f"{who}: the server no longer knows this session (opened "
                     f"{entry.first - opened:.1f} s earlier through this proxy) and answered "
                     f"400 {entry.count} time(s): it restarted, or another server took the port")
            hint = ("the server lost its sessions: the client must reconnect; if it did not "
                    "restart, look for a second server on the same port")
        else:
            code = "unknown"
            cause = (f"{sid}: the server answered 400 for a session it does not know "
                     f"({entry.count} time(s)); the session was opened before the proxy watched")
            hint = ("the server restarted or another server answers on this port: make the "
                    "client reconnect and check for a second server")
        self._flag(entry.first, F.UNKNOWN_SID, code, cause, hint, entry.record, eio_sid=sid,
                   count=entry.count)

    def _open_event_expectation(self, record: Record) -> None:
        rule = self.correlator.rule_for_event(record.nsp, record.name)
        if record.ack_id is not None and rule is None:
            return
        self._open_expectation(record, "event", rule)

    def _open_expectation(self, record: Record, source: str, rule_index: int | None,
                          path: str | None = None) -> None:
        body = payload.core(record.args)
        chain = payload.dict_chain(body)
        target: Any = chain[-1] if chain else body
        scalars = payload.leaves(target)
        structural = _matchable(target, scalars)
        rule = self.correlator.rules[rule_index] if rule_index is not None else None
        key = None
        if rule is not None and (rule.match or rule.out_name):
            key = rule_key(rule, body, inbound=True)
        if not structural and key is None:
            return
        fields: tuple[str, ...] = ()
        if self.profile is not None and self.profile.required_fields:
            fields = tuple(f for f in self.profile.required_fields if payload.has_key(body, f))
        within = rule.within if rule is not None and rule.within is not None else None
        exp = Expectation(
            id=self.correlator.new_id(), ts=record.ts,
            deadline=record.ts + (within if within is not None else self.config.deadline),
            source=source, payload=body, target=target,
            anchors=tuple(payload.anchors(scalars, ANCHOR_CHOICES)) if structural else (),
            conn=record.conn, eio_sid=record.eio_sid if source == "event" else None,
            nsp=record.nsp, name=record.name, path=path, seq=record.get("seq"),
            rule=rule_index, rule_key=key, structural=structural, fields=fields)
        self.expectations_opened += 1
        self.correlator.add(exp)
        self._wake_by(exp.deadline)

    def _matched(self, exp: Expectation, out: Record) -> None:
        self.correlator.remove(exp)
        self.expectations_matched += 1
        self.relay_latency.add(max(0.0, out.ts - exp.ts))
        if exp.source == "event":
            self.relaying[(exp.nsp, exp.name)] = None
            self._bound(self.relaying, 256)
        lost = [f for f in exp.fields if not payload.has_key(out.args, f)]
        if lost:
            what = f"POST {exp.path}" if exp.source == "http" else f"{exp.name!r} from a client"
            self._flag(out.ts, F.FIELDS_LOST, "dropped",
                       f"{what} carried {', '.join(lost)}, but the relayed {out.name!r} on "
                       f"{out.nsp} lacks {'it' if len(lost) == 1 else 'them'}",
                       f"keep {', '.join(lost)} when the server re-normalizes the event: the "
                       f"dashboard pairs and groups events by them", out,
                       dedupe=(out.nsp, out.name, tuple(lost)), fields=lost)


    def _expected_nsp(self, exp: Expectation) -> str:
        rule = self.correlator.rules[exp.rule] if exp.rule is not None else None
        if rule is not None and rule.out_nsp and not any(c in rule.out_nsp for c in "*?["):
            return rule.out_nsp
        if self.profile is not None and self.profile.nsp:
            return self.profile.nsp
        if exp.source == "event" and exp.nsp:
            return exp.nsp
        if len(self.server_nsps) == 1:
            return next(iter(self.server_nsps))
        return "/"

    def _judge_lost(self, exp: Expectation, ts: float) -> None:
        if exp.source == "event" and not self._must_relay(exp):
            self.unrelayed[f"{exp.nsp} {exp.name}"] += 1
            self._bound_counter(self.unrelayed, 256)
            return
        nsp = self._expected_nsp(exp)
        others = [s for s in self.sessions.open.values() if s.eio_sid != exp.eio_sid]
        receivers = [s for s in others if s.connected(nsp)]
        if exp.echoed and not receivers:
            self.expectations_matched += 1
            return
        what = (f"POST {exp.path}" if exp.source == "http"
                else f"{exp.name!r} from {self._label(exp.eio_sid)} on {exp.nsp}")
        waited = ts - exp.ts
        head = f"{what} did not come out within {waited:g} s: "
        fields: dict[str, Any] = {"expected_nsp": nsp, "waited_s": round(waited, 3),
                                  "ingest_status": exp.status}
        code, cause, hint = self._lost_cause(exp, nsp, ts, others, receivers, fields)
        self.lost_causes[code] += 1
        self._flag(ts, F.LOST, code, head + cause, hint, None, path=exp.path, conn=exp.conn,
                   eio_sid=exp.eio_sid, nsp=exp.nsp, name=exp.name, dir="in", **fields)

    def _must_relay(self, exp: Expectation) -> bool:
        return (self.config.strict_client_events or exp.rule is not None
                or (exp.nsp, exp.name) in self.relaying)

    def _lost_cause(self, exp: Expectation, nsp: str, ts: float, others: list[Session],
                    receivers: list[Session],
                    fields: dict[str, Any]) -> tuple[str, str, str]:
        if exp.source == "http" and (exp.status is None or exp.status >= 400):
            if exp.status is None:
                return (F.LOST_INGEST_ERROR, "the server had not answered the POST",
                        "the server's ingest handler hangs: answer the POST first, then relay")
            return (F.LOST_INGEST_ERROR, f"the server answered the ingest with {exp.status}",
                    _ingest_hint(exp.status, exp.path))
        if exp.echoed:
            fields["receivers"] = [s.eio_sid for s in receivers]
            return (F.LOST_ECHO_ONLY,
                    f"it was delivered only back to its sender, not to the "
                    f"{len(receivers)} other client(s) on {nsp}",
                    "the server emits to the sender's sid: broadcast to the namespace/room "
                    "instead (python-socketio: emit without to=sid; JS: io.emit / "
                    "socket.broadcast.emit)")
        window_start = exp.ts - self.config.deadline
        # A client refused on another namespace usually gives up for good: look further back.
        namespace_start = exp.ts - NAMESPACE_LOOKBACK
        flapped = [s for s in self.sessions.closed.values()
                   if s.closed is not None and s.closed >= window_start
                   and s.eio_sid != exp.eio_sid and nsp in s.nsps]
        pending = [s for s in others if (s.nsps.get(nsp) is not None
                                         and s.nsps[nsp].state == "pending")]
        late = [s for s in receivers if s.nsps[nsp].since > exp.ts]
        if (not receivers or len(late) == len(receivers)) and (flapped or pending or late):
            names = [s.label() for s in (late or pending or flapped)]
            fields["receivers"] = names
            state = ("reconnected after it" if late else
                     "was mid-connect" if pending else "had disconnected")
            return (F.LOST_RECONNECTING,
                    f"the receiver {', '.join(names)} {state} on {nsp}",
                    "the receiver was reconnecting when the server relayed: find why it "
                    "dropped (ping timeouts, proxies with short read timeouts) or replay "
                    "missed events on reconnect (connection state recovery)")
        if not receivers:
            elsewhere = [(s, n, st) for s in others for n, st in s.nsps.items() if n != nsp]
            recent_refused = [(s, n, st) for s in self.sessions.closed.values()
                              if s.closed is not None and s.closed >= namespace_start
                              for n, st in s.nsps.items() if n != nsp]
            tried = elsewhere or recent_refused
            if tried:
                parts = []
                for session, other, nsp_state in tried[:4]:
                    desc = f"{session.label()} on {other}"
                    if nsp_state.state == "refused":
                        desc += f" (refused: {nsp_state.message!r})"
                    parts.append(desc)
                fields["clients_elsewhere"] = [f"{s.eio_sid} {n}" for s, n, _ in tried[:8]]
                other_nsp = tried[0][1]
                return (F.LOST_NAMESPACE,
                        f"no client was connected on {nsp}, where the server relays; clients "
                        f"were only on another namespace: {'; '.join(parts)}",
                        f"connect the dashboard to {nsp} (the namespace the server emits on), "
                        f"or make the server emit on {other_nsp}")
            handshaking = [s for s in others if not s.nsps]
            extra = (f" ({len(handshaking)} Engine.IO session(s) open without any namespace)"
                     if handshaking else "")
            return (F.LOST_NO_RECEIVERS, f"no client was connected{extra}",
                    "no dashboard was listening: open it (pointed at this proxy's port) before "
                    "the events are sent; the server does not keep events for later")
        fields["receivers"] = [s.eio_sid for s in receivers[:16]]
        candidates = [e for e in self.recent if exp.ts <= e.ts <= ts]
        expected_name = self._expected_name(exp)
        best: tuple[tuple[float, int, float], Emission, tuple[int, int]] | None = None
        wanted = payload.pairs(exp.payload)
        for emission in candidates:
            if emission.pairs is None:
                emission.pairs = payload.pairs(emission.args)
            same, total = payload.similarity(wanted, emission.pairs)
            name_bonus = 1 if expected_name and emission.name == expected_name else 0
            score = (same / total if total else 0.0, name_bonus, -(emission.ts - exp.ts))
            if (same or name_bonus) and (best is None or score > best[0]):
                best = (score, emission, (same, total))
        if best is not None:
            _, emission, (same, total) = best
            diffs = payload.differences(exp.payload, emission.args)
            if expected_name and emission.name != expected_name:
                diffs.insert(0, f"named {emission.name!r}, expected {expected_name!r}")
            if emission.nsp != nsp:
                diffs.insert(0, f"on {emission.nsp}, expected {nsp}")
            fields["nearest"] = {"name": emission.name, "nsp": emission.nsp,
                                 "after_ms": round((emission.ts - exp.ts) * 1000, 1),
                                 "fields_matching": f"{same}/{total}", "differences": diffs}
            return (F.LOST_EMITTED_OTHER,
                    f"the server emitted {emission.name!r} on {emission.nsp} "
                    f"{(emission.ts - exp.ts) * 1000:.0f} ms later, which differs: "
                    f"{'; '.join(diffs) or 'different payload'}",
                    "the relay changed the event: keep the ingested payload intact inside the "
                    "emitted one (same dict, same field values)")
        on_nsp = [e for e in candidates if e.nsp == nsp]
        labels = ", ".join(s.label() for s in receivers[:4])
        if not on_nsp:
            return (F.LOST_NOT_DELIVERED,
                    f"{len(receivers)} client(s) connected on {nsp} ({labels}) received nothing "
                    f"from the server in that time",
                    "the server emitted to nobody connected: check the emit's room/to= (the "
                    "clients never joined that room) and that the relay handler ran")
        names = sorted({str(e.name) for e in on_nsp})[:6]
        fields["evidence"] = {"receivers": len(receivers), "emitted_on_nsp": len(on_nsp),
                              "names": names, "ingest_status": exp.status,
                              "ingest_ms": exp.duration_ms}
        return (F.LOST_UNKNOWN,
                f"{len(receivers)} client(s) on {nsp} got {len(on_nsp)} other event(s) "
                f"({', '.join(names)}), none resembling the ingested payload",
                "follow the event through the server's relay code: nothing it emitted carried "
                "this payload")

    def _expected_name(self, exp: Expectation) -> str | None:
        rule = self.correlator.rules[exp.rule] if exp.rule is not None else None
        if rule is not None and rule.out_name and not any(c in rule.out_name for c in "*?["):
            return rule.out_name
        return exp.name if exp.source == "event" else None

    def _bound(self, table: OrderedDict[Any, Any], limit: int | None = None) -> None:
        cap = limit or self.config.max_pending
        while len(table) > cap:
            table.popitem(last=False)
            self.evicted_pending += 1

    @staticmethod
    def _bound_counter(counter: Counter[str], limit: int) -> None:
        if len(counter) > limit:
            for key, _ in counter.most_common()[limit:]:
                del counter[key]


def _matchable(target: Any, scalars: list[Any]) -> bool:
    """Whether a payload (whose leaves are ``scalars``) says enough to be recognised when it
    comes out again."""
    if isinstance(target, dict):
        return bool(scalars)
    if isinstance(target, list):
        return any(payload.is_anchor(v) or isinstance(v, (dict, list)) for v in target)
    return payload.is_anchor(target)


def _ingest_hint(status: int, path: Any) -> str:
    if status == 404:
        return (f"the server does not serve {path}: the hooks post to the wrong path, port or "
                "server version")
    if status == 413:
        return "the body is too large for the server: raise its limit or send smaller events"
    if status in (400, 422):
        return "the server rejected the body: check the JSON the hook sends"
    if status >= 500:
        return ("the server's ingest handler failed (bad JSON, a missing field, or a body above "
                "1 MiB in aiohttp): its log has the traceback")
    return "the server refused the ingest: check its log"

