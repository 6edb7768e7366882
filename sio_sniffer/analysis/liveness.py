"""Liveness: whether a session is still there and working.

Engine.IO sessions open, upgrade from polling to WebSocket and close; in between, one side pings
and the other answers. A heartbeat that stops is a ``ping_timeout`` flag naming the silent side,
an upgrade that never completes an ``upgrade_failed`` one. A probe WebSocket that closes is
judged only later: a client that ends its session closes the probe with it, which is no failed
upgrade.
"""

from __future__ import annotations

from sio_sniffer import model
from sio_sniffer.analysis.bookkeeping import Part, Shared
from sio_sniffer.analysis.sessions import Session
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F

# A WebSocket the server refused never opened: its upgrade request lost its headers on the way.
HEADER_HINT = ("the client stays on polling: check that WebSocket upgrades reach the server "
               "(Upgrade/Connection headers, no proxy in between dropping them)")
# A WebSocket that opened got its headers through: the probe exchange on it is what failed.
PROBE_HINT = ("the client stays on polling: the WebSocket opened but the probe (2probe/3probe) "
              "and upgrade (5) packets did not complete: check that the server answers the "
              "probe and that nothing in between holds back WebSocket frames")

# The reason the decoder gives an eio.close record for the client's own close packet.
CLIENT_SENT_CLOSE = "client sent close"


class Liveness(Part):
    """Session lifecycle records, heartbeat checks and their ``ping``/``pong``/``upgrade``
    timers."""

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared)

    def eio_open(self, record: Record) -> None:
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

    def eio_upgrade(self, record: Record) -> None:
        session = self.sessions.for_record(record)
        if session is not None:
            session.upgraded = True
            session.transport = "websocket"
            if record.conn is not None:
                session.ws_conn = record.conn
                self.sessions.attach_conn(session, record.conn)

    def eio_close(self, record: Record) -> None:
        session = self.sessions.for_record(record)
        if session is not None:
            reason = record.get("reason") or "closed"
            if reason == CLIENT_SENT_CLOSE:
                session.client_closed = record.ts
            self.close(session, record.ts, reason, record)

    def close(self, session: Session, ts: float, reason: str, where: Record | None) -> None:
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

    def ws_open(self, record: Record) -> None:
        sid = record.eio_sid
        session = self.sessions.get(sid) if sid else None
        if session is None:
            return
        self.sessions.attach_conn(session, record.conn)
        if session.transport == "polling" and not session.upgraded:
            session.upgrade_started = record.ts
            session.ws_conn = record.conn
            self.schedule(record.ts + self.config.deadline, "upgrade",
                          (session.eio_sid, record.ts))

    def ws_close(self, record: Record) -> None:
        session = self.sessions.for_record(record)
        if session is None or record.conn != session.ws_conn:
            return
        code = record.get("code")
        if not session.upgraded and session.upgrade_started is not None:
            self._probe_closed(session, record.ts, f"the WebSocket closed (code {code}) before "
                               "the upgrade completed")
        elif session.upgraded or session.transport == "websocket":
            if record.dir == "in":
                session.client_closed = record.ts
            self.close(session, record.ts, f"websocket closed (code {code})", record)

    def conn_close(self, record: Record) -> None:
        if record.conn is None:
            return
        sid = self.sessions.sid_for_conn(record.conn)
        session = self.sessions.get(sid)
        if session is not None and record.conn == session.ws_conn:
            if session.upgraded or session.transport == "websocket":
                if record.get("by") == "client":
                    session.client_closed = record.ts
                self.close(session, record.ts, f"connection closed by {record.get('by')}",
                           record)
            elif session.upgrade_started is not None:
                self._probe_closed(session, record.ts, "the connection carrying the WebSocket "
                                   f"closed (by {record.get('by')}) before the upgrade")
        self.sessions.drop_conn(record.conn)

    def _probe_closed(self, session: Session, ts: float, cause: str) -> None:
        """The probe WebSocket went away before the upgrade: a failure only if the session
        lives on, so judged ``deadline`` seconds later."""
        session.upgrade_started = None
        session.ws_conn = None
        session.probe_closed = ts
        session.probe_cause = cause
        self.schedule(ts + self.config.deadline, "probe", (session.eio_sid, ts))

    def probe_due(self, key: tuple[str, float], due: float) -> None:
        sid, since = key
        session = self.sessions.get(sid)
        if session is None or session.upgraded or session.probe_closed != since:
            return  # the session ended (or upgraded after all): no failed upgrade
        alive = (session.last_ping, session.last_pong, session.last_in, session.last_out,
                 session.last_request)
        if not any(ts is not None and ts > since for ts in alive):
            # Nothing from the session since the probe closed: it may be ending without a close
            # packet. Look again until a heartbeat round would have shown it alive.
            limit = self._ping_limit(session)
            if limit is not None and due + self.config.deadline <= since + limit:
                self.schedule(due + self.config.deadline, "probe", key)
            return
        self.upgrade_failed(session, due, f"{session.probe_cause}, and the session lives on "
                            "over polling", None, hint=PROBE_HINT)

    def upgrade_due(self, key: tuple[str, float], due: float) -> None:
        session = self.sessions.get(key[0])
        if session is None or session.upgraded or session.upgrade_started != key[1]:
            return
        self.upgrade_failed(session, due, f"no upgrade within {self.config.deadline:g} s of the "
                            "WebSocket opening (probe unanswered?)", None, hint=PROBE_HINT)

    def upgrade_failed(self, session: Session, ts: float, cause: str,
                       where: Record | None, hint: str = HEADER_HINT) -> None:
        session.upgrade_started = None
        self.flag(ts, F.UPGRADE_FAILED, "upgrade", f"{session.label()}: {cause}", hint,
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
            self.schedule(ts + limit, "ping", session.eio_sid)

    def eio_ping(self, record: Record) -> None:
        session = self.sessions.for_record(record)
        if session is None or record.args == "probe" or record.get("probe"):
            return
        if session.last_ping is not None:
            session.ping_gap = record.ts - session.last_ping
        session.last_ping = record.ts
        session.awaiting_pong = True
        if not session.pong_check_due:
            session.pong_check_due = True
            self.schedule(record.ts + self._pong_limit(session), "pong", session.eio_sid)
        self._schedule_ping_check(session, record.ts)

    def eio_pong(self, record: Record) -> None:
        session = self.sessions.for_record(record)
        if session is None or record.args == "probe" or record.get("probe"):
            return
        session.awaiting_pong = False
        session.last_pong = record.ts

    def pong_due(self, sid: str, due: float) -> None:
        session = self.sessions.get(sid)
        if session is None:
            return
        session.pong_check_due = False
        if not session.awaiting_pong or session.ping_flagged or session.last_ping is None:
            return
        overdue = session.last_ping + self._pong_limit(session)
        if due < overdue:
            session.pong_check_due = True
            self.schedule(overdue, "pong", sid)
            return
        self._ping_flag(session, due, silent="answerer")

    def ping_due(self, sid: str, due: float) -> None:
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
            self.schedule(last + limit, "ping", sid)
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
        self.flag(ts, F.PING_TIMEOUT, f"{side}_silent", cause, hint, None,
                  eio_sid=session.eio_sid, transport=session.transport, side=side,
                  gap_s=round(gap, 3), limit_s=limit)
