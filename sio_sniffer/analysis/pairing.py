"""Pairing: every CONNECT waits for its answer, every event with an ack id for its ACK.

A CONNECT with no answer within ``connect_deadline`` is a ``connect_unanswered`` flag (with auth,
usually a connect handler that takes no auth argument); a refused one a ``connect_error`` that
says which namespaces the server does accept. An event with an ack id and no ACK within
``ack_deadline`` is an ``ack_missing`` flag naming the side whose handler never acknowledged.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from sio_sniffer.analysis.bookkeeping import Latencies, Part, Shared
from sio_sniffer.analysis.sessions import REFUSED_400, NspState
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F

ConnectKey = tuple[str, str]
AckKey = tuple[str | None, str | None, int, str]


# A client that closes this long (seconds) after a CONNECT without answer waited for it and
# gave up; one that closes sooner was shutting down anyway.
CONNECT_GAVE_UP = 1.0


class Pairing(Part):
    """Pending CONNECTs and acks (bounded), the namespaces the server accepted, ack latency;
    owner of the ``connect`` and ``ack`` timers."""

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared)
        self.connects: OrderedDict[ConnectKey, Record] = OrderedDict()
        self.acks: OrderedDict[AckKey, Record] = OrderedDict()
        self.server_nsps: OrderedDict[str, None] = OrderedDict()
        self.ack_latency = Latencies(shared.config.latency_samples)
        self.acks_missing = 0
        self.acks_unmatched = 0

    def sio_connect(self, record: Record) -> None:
        session = self.sessions.for_record(record)
        if session is None or record.nsp is None:
            return
        auth = record.get("auth")
        session.nsps[record.nsp] = NspState(since=record.ts, state="pending", auth=auth,
                                            auth_keys=tuple(record.get("auth_keys") or ()))
        key = (session.eio_sid, record.nsp)
        self.connects[key] = record
        self.connects.move_to_end(key)
        self.bounds.bound(self.connects)
        self.schedule(record.ts + self.config.connect_deadline, "connect", (key, record.ts))

    def connect_due(self, key: tuple[ConnectKey, float], due: float) -> None:
        pending_key, _ = key
        record = _take_due(self.connects, key)
        if record is None:
            return
        session = self.sessions.known(pending_key[0])
        within = f"within {self.config.connect_deadline:g} s"
        if session is not None and session.close_reason == REFUSED_400:
            return  # the server disowned the session (unknown_sid says so): no answer can come
        if session is not None and session.closed is not None:
            waited = session.closed - record.ts
            if waited < CONNECT_GAVE_UP:
                # Closed right after asking (a client shutting down): nobody waited for it.
                return
            # The client waited, then gave up: claude-mpm's auth bug seen from a client whose
            # own timeout is shorter than the deadline.
            within = f"in the {waited:.1f} s the client waited before it gave up and closed"
        auth = record.get("auth")
        who = session.label() if session else pending_key[0]
        if auth:
            keys = ", ".join(record.get("auth_keys") or ()) or "?"
            cause = (f"{who}: CONNECT to {record.nsp} with an auth payload (keys: {keys}) got no "
                     f"answer {within}")
            hint = ("the server's connect handler fails when given auth (claude-mpm's handler "
                    "takes no auth argument and raises): connect without auth, or accept auth in "
                    "the handler")
        else:
            cause = f"{who}: CONNECT to {record.nsp} got no answer {within}"
            hint = ("the server's connect handler never returned: look for an exception or a "
                    "blocking call in it")
        self.flag(due, F.CONNECT_UNANSWERED, "auth" if auth else "no_answer", cause, hint,
                  record, auth=auth)

    def sio_connect_ok(self, record: Record) -> None:
        session = self.sessions.for_record(record)
        if record.nsp is None:
            return
        self.server_nsps[record.nsp] = None
        self.bounds.bound(self.server_nsps, 64)
        # An answer that passes just after the client's close frame still answers.
        sid = record.eio_sid or self.sessions.sid_for_conn(record.conn)
        if sid is not None:
            self.connects.pop((sid, record.nsp), None)
        if session is None:
            return
        state = session.nsps.get(record.nsp)
        if state is None:
            state = NspState(since=record.ts, state="connected")
            session.nsps[record.nsp] = state
        state.state = "connected"
        state.since = record.ts
        state.sio_sid = record.sio_sid
        self.sessions.apply_roles(session)

    def sio_connect_error(self, record: Record) -> None:
        # A refusal that passes after the session closed still answers its CONNECT.
        session = self.sessions.known(record.eio_sid or self.sessions.sid_for_conn(record.conn))
        nsp = record.nsp or "/"
        message = record.get("message")
        if session is not None:
            self.connects.pop((session.eio_sid, nsp), None)
            state = session.nsps.setdefault(nsp, NspState(since=record.ts, state="refused"))
            state.state = "refused"
            state.message = None if message is None else str(message)
        text = str(message) if message is not None else "no message"
        who = session.label() if session else record.eio_sid
        cause = f"{who}: the server refused CONNECT to {nsp}: {text!r}"
        # Only the servers' own unknown-namespace answers say the namespace is missing: any other
        # message comes from a middleware or connect handler that turned the client down.
        if text.strip().lower() in F.NAMESPACE_REFUSALS:
            code = F.CONNECT_ERROR_NAMESPACE
            known = [n for n in self.server_nsps if n != nsp]
            if known:
                hint = (f"the server has no namespace {nsp} but accepts {', '.join(known)}: "
                        f"connect the client there, or register namespace {nsp} on the server")
            else:
                hint = (f"the server has no namespace {nsp}: connect the client to a namespace "
                        f"it registers, or register {nsp} on the server")
        else:
            code = F.CONNECT_ERROR_REFUSED
            hint = (f"the server's middleware or connect handler for {nsp} refused the client: "
                    "check the token / auth payload the client sends and the conditions the "
                    "server's middleware (io.use / nsp.use) or connect handler checks")
        self.flag(record.ts, F.CONNECT_ERROR, code, cause, hint, record, dedupe=(nsp, text),
                  message=message)

    def sio_disconnect(self, record: Record) -> None:
        session = self.sessions.for_record(record)
        if session is not None and record.nsp is not None:
            session.nsps.pop(record.nsp, None)

    def expect_ack(self, record: Record) -> None:
        """An event that carries an ack id: its ACK must come back within ``ack_deadline``."""
        if record.ack_id is None:
            return
        key = (record.eio_sid, record.nsp, record.ack_id, record.dir or "?")
        self.acks[key] = record
        self.bounds.bound(self.acks)
        self.schedule(record.ts + self.config.ack_deadline, "ack", (key, record.ts))

    def sio_ack(self, record: Record) -> None:
        if record.ack_id is None:
            return
        asked = "out" if record.dir == "in" else "in"
        key = (record.eio_sid, record.nsp, record.ack_id, asked)
        event = self.acks.pop(key, None)
        if event is None:
            self.acks_unmatched += 1
            return
        self.ack_latency.add(max(0.0, record.ts - event.ts))

    def ack_due(self, key: tuple[AckKey, float], due: float) -> None:
        record = _take_due(self.acks, key)
        if record is None:
            return
        self.acks_missing += 1
        asker, answerer = ("client", "server") if record.dir == "in" else ("server", "client")
        session = self.sessions.known(record.eio_sid)
        who = session.label() if session else record.eio_sid
        self.flag(due, F.ACK_MISSING, f"{answerer}_no_ack",
                  f"{who}: the {asker} sent {record.name!r} with ack id {record.ack_id} and got "
                  f"no ACK within {self.config.ack_deadline:g} s",
                  f"the {answerer}'s handler for {record.name!r} never acknowledged: return a "
                  "value from the handler (python-socketio) or call the callback (JS)", record)


def _take_due(table: OrderedDict[Any, Record], key: tuple[Any, float]) -> Record | None:
    """The pending record a timer was set for, removed from ``table``; None when it was
    answered (or replaced by a newer one under the same key) in the meantime."""
    pending_key, since = key
    record = table.get(pending_key)
    if record is None or record.ts != since:
        return None
    del table[pending_key]
    return record
