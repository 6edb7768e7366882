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
from collections import Counter
from collections.abc import Callable
from typing import Any

from sio_sniffer import model
from sio_sniffer.analysis.bookkeeping import Bounds, Emit, Flagger, Shared
from sio_sniffer.analysis.broadcasts import Broadcasts
from sio_sniffer.analysis.config import AnalysisConfig
from sio_sniffer.analysis.correlate import Correlator
from sio_sniffer.analysis.ingest import Ingest
from sio_sniffer.analysis.liveness import Liveness
from sio_sniffer.analysis.pairing import Pairing
from sio_sniffer.analysis.relay import Relay
from sio_sniffer.analysis.sessions import SessionTable
from sio_sniffer.model import Record
from sio_sniffer.model import cluster as C
from sio_sniffer.model import flags as F


class Analyzer:
    """Sessions, broadcasts, rooms, ack pairing, in→out correlation and flags.

    Each concern is a part of its own (:class:`Liveness`, :class:`Pairing`, :class:`Relay`,
    :class:`Broadcasts`, :class:`Ingest`); the analyzer routes records to them, runs the timers
    they schedule and sums them up.
    """

    def __init__(self, config: AnalysisConfig, emit: Emit) -> None:
        self.config = config
        self.emit = emit
        self.profile = config.profile
        self.sessions = SessionTable(config.max_sessions, config.max_closed_sessions,
                                     config.all_roles())
        self.correlator = Correlator(config.all_rules(), config.max_expectations)
        self.flag = Flagger(emit, config.flag_repeat)
        self.bounds = Bounds(config.max_pending)
        self.timers: list[tuple[float, int, str, Any]] = []
        self.timer_seq = 0
        self.now = 0.0
        # The earliest time anything (broadcast window, expectation deadline, timer) can fall
        # due: records before it skip the deadline checks, which every record used to run.
        self.wake = math.inf
        self.started: float | None = None
        self.counts: Counter[str] = Counter()
        self.finished = False
        shared = Shared(config, self.sessions, self.flag, self.bounds, emit, self._schedule,
                        self._wake_by)
        self.liveness = Liveness(shared)
        self.pairing = Pairing(shared)
        self.relay = Relay(shared, self.correlator, self.pairing.server_nsps)
        self.broadcasts = Broadcasts(shared, self.relay)
        self.groups = self.broadcasts.groups
        self.ingest = Ingest(shared, self.correlator, self.relay, self.liveness)
        self.handlers: dict[str, Callable[[Record], None]] = {
            model.EIO_OPEN: self._eio_open,
            model.EIO_UPGRADE: self.liveness.eio_upgrade,
            model.EIO_CLOSE: self.liveness.eio_close,
            model.EIO_PING: self.liveness.eio_ping,
            model.EIO_PONG: self.liveness.eio_pong,
            model.WS_OPEN: self.liveness.ws_open,
            model.WS_CLOSE: self.liveness.ws_close,
            model.CONN_CLOSE: self.liveness.conn_close,
            model.HTTP_ABANDONED: self.ingest.abandoned,
            model.UPSTREAM_ERROR: self.ingest.upstream_error,
            model.SIO_CONNECT: self.pairing.sio_connect,
            model.SIO_CONNECT_OK: self._sio_connect_ok,
            model.SIO_CONNECT_ERROR: self.pairing.sio_connect_error,
            model.SIO_DISCONNECT: self.pairing.sio_disconnect,
            model.SIO_EVENT: self._sio_event,
            model.SIO_ACK: self.pairing.sio_ack,
            model.HTTP_REQUEST: self.ingest.http_request,
            model.HTTP: self._http,
            model.DECODE_ERROR: self._decode_error,
        }
        cluster = self.relay.cluster
        if cluster is not None:
            self.handlers.update({C.CLUSTER_DELIVERED: self.relay.delivered_elsewhere,
                                  C.CLUSTER_EMIT: cluster.emitted,
                                  C.CLUSTER_NODE: cluster.presence,
                                  C.CLUSTER_STATE: cluster.changed})
        self.timer_handlers: dict[str, Callable[[Any, float], None]] = {
            "connect": self.pairing.connect_due,
            "ack": self.pairing.ack_due,
            "pong": self.liveness.pong_due,
            "ping": self.liveness.ping_due,
            "upgrade": self.liveness.upgrade_due,
            "probe": self.liveness.probe_due,
            "sid400": self.ingest.sid400_due,
            "hooks": self.ingest.hooks_due,
        }

    @property
    def expectations_matched(self) -> int:
        """Ingested events seen coming out again (or echoed when nobody else could get them)."""
        return self.relay.matched

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
        if self.ingest.sid400 and record.eio_sid in self.ingest.sid400:
            self.ingest.alive_after_400(record)
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
            self.broadcasts.announce(group)
        self.emit(Record(event=model.ROOMS, ts=now, extra={"rooms": self.rooms()}))
        self.emit(Record(event=model.SUMMARY, ts=now, extra=self.summary()))

    def unjudged(self) -> list[dict[str, Any]]:
        """Ingested events whose deadline had not come by the analysis clock: what it sent,
        who sent it, how long it had waited and how long it may (oldest first)."""
        return self.relay.unjudged(self.now)

    def summary(self) -> dict[str, Any]:
        """Counters and latencies so far (what ``finish`` emits as the summary record)."""
        roles: Counter[str] = Counter(s.role() for s in self.sessions.open.values())
        closed_roles: Counter[str] = Counter(s.role() for s in self.sessions.closed.values())
        ingest, relay, pairing = self.ingest, self.relay, self.pairing
        notes = []
        if (ingest.paths and not ingest.hooks and self.profile is not None
                and roles.get("dashboard")):
            notes.append(f"dashboards were connected but no POST reached "
                         f"{', '.join(ingest.paths)}: are the hooks installed and pointed at "
                         f"this proxy's port?")
        return {
            "duration_s": round(self.now - self.started, 3) if self.started else 0.0,
            "records": sum(self.counts.values()),
            "record_kinds": dict(self.counts.most_common(20)),
            "sessions": {"total": self.sessions.total, "open": len(self.sessions.open),
                         "open_by_role": dict(roles), "recently_closed_by_role": dict(closed_roles),
                         "evicted": self.sessions.evicted},
            "hooks": [{"peer": host, "user_agent": ua, "posts": n}
                      for (host, ua), n in list(ingest.hooks.items())[-10:]],
            "ingest": {"status": dict(ingest.status), **ingest.latency.describe()},
            "expectations": {"opened": relay.opened,
                             "matched": relay.matched,
                             "lost": self.flag.counts.get(F.LOST, 0),
                             "late": relay.late,
                             "bypassed": relay.bypassed,
                             "probes_lost": relay.probes_lost,
                             "open_at_exit": self.correlator.waiting(),
                             "dropped_table_full": self.correlator.dropped,
                             "lost_by_cause": dict(relay.lost_causes),
                             "client_events_never_relayed": dict(relay.unrelayed.most_common(10)),
                             "never_relayed": dict(relay.never_relayed.most_common(10)),
                             "relay_latency": relay.latency.describe()},
            "acks": {"paired": pairing.ack_latency.count, "missing": pairing.acks_missing,
                     "unmatched": pairing.acks_unmatched, **pairing.ack_latency.describe()},
            "broadcasts": self.groups.broadcasts,
            "rooms": len(self.groups.rooms),
            "flags": dict(self.flag.counts),
            "flags_suppressed": dict(self.flag.suppressed),
            "unlistened": [{"nsp": nsp, "name": name, "count": n}
                           for (nsp, name), n in self.broadcasts.unlistened.items()],
            "evicted": {"groups": self.groups.evicted, "pending": self.bounds.evicted},
            "notes": notes,
            **({"cluster": self.relay.cluster.summary()} if self.relay.cluster else {}),
        }

    def _advance(self, now: float) -> None:
        self.now = now
        for group in self.groups.due_announce(now):
            self.broadcasts.announce(group)
        for group in self.groups.due_expire(now):
            self.broadcasts.finalize(group)
        if self.correlator.deadlines and self.correlator.deadlines[0][0] <= now:
            for exp in self.correlator.due(now):
                self.relay.judge_lost(exp, exp.deadline)
        while self.timers and self.timers[0][0] <= now:
            due, _, kind, key = heapq.heappop(self.timers)
            self.timer_handlers[kind](key, due)
        self.wake = min(self.groups.next_due(), self.correlator.next_due(),
                        self.timers[0][0] if self.timers else math.inf)

    def _sio_connect_ok(self, record: Record) -> None:
        self.relay.judge.connected_ever = True
        self.pairing.sio_connect_ok(record)
        self.ingest.watch_hooks(record)

    def _eio_open(self, record: Record) -> None:
        self.relay.judge.note_sticky(record.get("sticky"))
        self.liveness.eio_open(record)

    def _http(self, record: Record) -> None:
        self.relay.judge.note_sticky(record.get("sticky"))
        self.ingest.http(record)

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
                return key[0] in self.pairing.connects
            if kind == "ack":
                return key[0] in self.pairing.acks
            if kind in ("ping", "pong"):
                return key in self.sessions.open
            if kind in ("upgrade", "probe"):
                return key[0] in self.sessions.open
            return True

        self.timers = [t for t in self.timers if live(t[2], t[3])]
        heapq.heapify(self.timers)

    def _sio_event(self, record: Record) -> None:
        session = self.sessions.for_record(record)
        if (session is not None and session.max_payload and record.size is not None
                and record.size > session.max_payload):
            self.flag(record.ts, F.PAYLOAD_TOO_LARGE, "max_payload",
                      f"{session.label()}: event {record.name!r} is {record.size} bytes, "
                      f"above the handshake's maxPayload {session.max_payload}",
                      "raise the server's max_http_buffer_size / maxHttpBufferSize, or send "
                      "smaller events (the server drops the connection otherwise)", record,
                      size=record.size, max_payload=session.max_payload)
        self.pairing.expect_ack(record)
        if record.dir == "in":
            if session is not None:
                session.events_in += 1
                session.last_in = record.ts
            self.relay.expect_event(record)
        elif record.dir == "out":
            self.broadcasts.deliver(record, session)
            self.relay.judge.note_offset(record)

    def _decode_error(self, record: Record) -> None:
        layer = record.get("layer") or "?"
        if layer == "cluster":
            # A message on the cluster's Redis (the link counts the rest of its kind; its
            # closing total, "final", is already flagged).
            if record.get("final"):
                return
            channel = record.get("channel")
            self.flag(record.ts, F.DECODE_ERROR, "cluster",
                      f"a message on the cluster's Redis channel {channel!r} was not understood "
                      f"and was skipped: {record.get('reason')}",
                      "the cluster view reads on without it (more of the same kind are counted, "
                      "not flagged): check that --cluster-channel names only the adapter's "
                      "channels and that every sniffer of the cluster runs the same version",
                      record, dedupe=("cluster", channel, record.get("reason")),
                      reason=record.get("reason"), channel=channel)
            return
        self.flag(record.ts, F.DECODE_ERROR, str(layer),
                  f"could not decode {layer} {record.dir or ''} data: {record.get('reason')} "
                  f"(offset {record.get('offset')})",
                  "the peers may disagree on the parser (msgpack vs JSON) or the protocol version "
                  "(EIO=3 vs 4); the traffic was forwarded untouched", record,
                  dedupe=(record.eio_sid or record.conn, layer, record.get("reason")),
                  reason=record.get("reason"))
