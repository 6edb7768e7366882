"""What the live page shows, kept on the server: clients, the flow picture, stats, ack pairs.

The page only ever holds a bounded window of the record stream, so anything that summarises the
whole session (who is connected, how many events went along each arrow, how many were lost and
where) is computed here, from every record, and sent to pages as a snapshot. Every table is
bounded; the oldest closed entries go first.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sio_sniffer import model
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F
from sio_sniffer.model.stats import percentile

# Records the stream does not list one by one: heartbeats would drown the events, and rooms and
# summaries are whole-session tables that reach the page through the snapshot.
UNLISTED = frozenset({model.EIO_PING, model.EIO_PONG, model.EIO_HEARTBEATS, model.ROOMS,
                      model.SUMMARY})

MAX_CLIENTS = 500
MAX_PENDING_ACKS = 10_000
MAX_CONNS = 4096
LATENCY_SAMPLES = 4096
FLOW_NODES = 8
RATE_WINDOW = 5  # seconds the events/s figures average over

# Where a lost event vanished, by the analysis' cause code (model/flags.py): refused at
# the server's door, dropped inside the server's relay, or sent towards receivers that were not
# there.
LOST_AT_INGEST = frozenset({F.LOST_INGEST_ERROR})
LOST_IN_SERVER = frozenset({F.LOST_EMITTED_OTHER, F.LOST_NOT_DELIVERED, F.LOST_UNKNOWN,
                            F.LOST_ECHO_ONLY})

AckKey = tuple[str | None, str | None, int, str]  # eio_sid, nsp, ack_id, dir of the event


def peer_host(peer: Any) -> str:
    """``127.0.0.1:5555`` -> ``127.0.0.1``; ``[::1]:5555`` -> ``::1``."""
    text = str(peer or "?")
    if text.startswith("["):
        return text[1:].partition("]")[0]
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def percentiles(samples: deque[float]) -> dict[str, float | int]:
    """``count``, ``p50``, ``p95``, ``p99`` and ``max`` in milliseconds (rounded)."""
    if not samples:
        return {"count": 0}
    ordered = sorted(samples)

    def pct(p: float) -> float:
        return round(percentile(ordered, p, ordered=True) or 0.0, 2)

    return {"count": len(ordered), "p50": pct(50), "p95": pct(95), "p99": pct(99),
            "max": round(ordered[-1], 2)}


@dataclass(slots=True)
class Client:
    """One row of the connections table: an Engine.IO session or an HTTP hook source."""

    id: str
    kind: str  # "session" or "http"
    first: float
    last: float
    transport: str | None = None
    upgraded: bool = False
    peer: str | None = None
    user_agent: str | None = None
    nsps: dict[str, str] = field(default_factory=dict)  # nsp -> pending|connected|refused|...
    state: str = "open"
    reason: str | None = None
    events_in: int = 0
    events_out: int = 0
    flags: int = 0
    last_flag: str | None = None

    def role(self) -> str:
        """The analysis' guess (analysis/sessions.py): only sends = hook, only receives =
        dashboard; an HTTP source is a hook when it posts, and a page load (a browser fetching
        the dashboard's files) when it only fetches."""
        if self.kind == "http":
            return "hook" if self.events_in else "web"
        if self.events_in and not self.events_out:
            return "hook"
        if not self.events_in:
            return "dashboard"
        return "client"

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "role": self.role(),
                "transport": self.transport, "upgraded": self.upgraded, "peer": self.peer,
                "user_agent": self.user_agent, "nsps": self.nsps, "state": self.state,
                "reason": self.reason, "first": self.first, "last": self.last,
                "in": self.events_in, "out": self.events_out, "flags": self.flags,
                "last_flag": self.last_flag}


@dataclass(slots=True)
class Note:
    """What the page needs besides the record: who it is (client key), and an ack's pairing."""

    client: str | None
    pair: int | None = None  # seq of the event an ack answers (or of the ack, on the event)
    ms: float | None = None


class ViewState:
    """Fed every record in order; :meth:`snapshot` is what the page's panels draw."""

    def __init__(self, clock: Callable[[], float] = time.time, live: bool = True) -> None:
        self.clock = clock
        self.live = live
        self.clients: OrderedDict[str, Client] = OrderedDict()
        self.conn_client: OrderedDict[str, str] = OrderedDict()
        self.pending_acks: OrderedDict[AckKey, tuple[int, float]] = OrderedDict()
        self.ack_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.ingest_ms: deque[float] = deque(maxlen=LATENCY_SAMPLES)
        self.per_second: OrderedDict[int, list[int]] = OrderedDict()
        self.totals: Counter[str] = Counter()
        self.flag_kinds: Counter[str] = Counter()
        self.lost_codes: Counter[str] = Counter()
        self.lost_at: dict[str, Counter[str]] = {}  # flow node id -> cause code -> count
        self.lost_causes: OrderedDict[str, str] = OrderedDict()  # code -> latest cause text
        self.sent_to: Counter[str] = Counter()  # receiver session -> events delivered
        # Sessions that ended, by (address, user agent): the next open from there is a return.
        self.closed_agents: Counter[tuple[str, str | None]] = Counter()
        self.reconnects = 0
        self.nsps: OrderedDict[str, None] = OrderedDict()
        self.last_ts = 0.0
        self.first_ts: float | None = None
        self.summary: Mapping[str, Any] = {}
        self.summary_source: Callable[[], Mapping[str, Any]] | None = None
        self.version = 0

    def feed(self, record: Record, seq: int) -> Note:
        """Take one record; the returned note travels with it to the page."""
        self.version += 1
        ts = record.ts
        if self.first_ts is None:
            self.first_ts = ts
        self.last_ts = max(self.last_ts, ts)
        if record.nsp is not None and record.nsp not in self.nsps:
            self.nsps[record.nsp] = None
            while len(self.nsps) > 256:
                self.nsps.popitem(last=False)
        kind = record.event
        key = self._client_key(record)
        note = Note(key)
        client = self.clients.get(key) if key is not None else None
        if client is None and record.eio_sid is not None:
            # A session first seen mid-way (opened before the sniffer watched) still gets a row.
            client = self._client(record.eio_sid, "session", ts)
        if client is not None:
            client.last = max(client.last, ts)
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, record, client, note, seq)
        return note

    def _client_key(self, record: Record) -> str | None:
        if record.eio_sid is not None:
            if record.conn is not None and record.conn not in self.conn_client:
                self._remember_conn(record.conn, record.eio_sid)
            return record.eio_sid
        if record.conn is not None:
            return self.conn_client.get(record.conn, record.conn)
        return None

    def _remember_conn(self, conn: str, key: str) -> None:
        self.conn_client[conn] = key
        self.conn_client.move_to_end(conn)
        while len(self.conn_client) > MAX_CONNS:
            self.conn_client.popitem(last=False)

    def _client(self, key: str, kind: str, ts: float) -> Client:
        client = self.clients.get(key)
        if client is None:
            client = self.clients[key] = Client(key, kind, ts, ts)
            if len(self.clients) > MAX_CLIENTS:
                self._evict()
        return client

    def _evict(self) -> None:
        victim = next((k for k, c in self.clients.items() if c.state != "open"), None)
        if victim is None:
            victim = next(iter(self.clients))
        del self.clients[victim]

    def _count(self, ts: float, direction: str) -> None:
        second = int(ts)
        bucket = self.per_second.get(second)
        if bucket is None:
            bucket = self.per_second[second] = [0, 0]
            while len(self.per_second) > 3600:
                self.per_second.popitem(last=False)
        bucket[0 if direction == "in" else 1] += 1
        self.totals[direction] += 1

    def _eio_open(self, record: Record, client: Client | None, note: Note, seq: int) -> None:
        assert note.client is not None
        client = self._client(note.client, "session", record.ts)
        client.transport = record.transport
        client.peer = record.get("peer")
        client.user_agent = record.get("user_agent")
        agent = (peer_host(client.peer), client.user_agent)
        # The same client coming back after a drop; a session its client closed itself (a tab
        # closed, a disconnect()) is not counted, so a new tab is no reconnect.
        if self.closed_agents[agent] > 0:
            self.reconnects += 1
            self.closed_agents[agent] -= 1

    def _eio_upgrade(self, record: Record, client: Client | None, note: Note, seq: int) -> None:
        if client is not None:
            client.upgraded = True
            client.transport = "websocket"

    def _eio_close(self, record: Record, client: Client | None, note: Note, seq: int) -> None:
        if client is not None and client.state == "open":
            client.state = "closed"
            client.reason = record.get("reason")
            if not str(client.reason or "").startswith("client"):
                self.closed_agents[(peer_host(client.peer), client.user_agent)] += 1
            if len(self.closed_agents) > MAX_CLIENTS:
                del self.closed_agents[next(iter(self.closed_agents))]

    def _sio_connect(self, record: Record, client: Client | None, note: Note, seq: int) -> None:
        if client is not None and record.nsp is not None:
            client.nsps[record.nsp] = "pending"

    def _sio_connect_ok(self, record: Record, client: Client | None, note: Note,
                        seq: int) -> None:
        if client is not None and record.nsp is not None:
            client.nsps[record.nsp] = "connected"

    def _sio_connect_error(self, record: Record, client: Client | None, note: Note,
                           seq: int) -> None:
        if client is not None and record.nsp is not None:
            client.nsps[record.nsp] = "refused"

    def _sio_disconnect(self, record: Record, client: Client | None, note: Note,
                        seq: int) -> None:
        if client is not None and record.nsp is not None:
            client.nsps[record.nsp] = "left"

    def _sio_event(self, record: Record, client: Client | None, note: Note, seq: int) -> None:
        direction = record.dir or "in"
        self._count(record.ts, direction)
        if client is not None:
            if direction == "in":
                client.events_in += 1
            else:
                client.events_out += 1
                self.sent_to[client.id] += 1
        if record.ack_id is not None:
            ack_key = (record.eio_sid, record.nsp, record.ack_id, direction)
            self.pending_acks[ack_key] = (seq, record.ts)
            self.pending_acks.move_to_end(ack_key)
            while len(self.pending_acks) > MAX_PENDING_ACKS:
                self.pending_acks.popitem(last=False)

    def _sio_ack(self, record: Record, client: Client | None, note: Note, seq: int) -> None:
        if record.ack_id is None:
            return
        # An ack travels the other way from the event that asked for it.
        asked = "out" if record.dir == "in" else "in"
        found = self.pending_acks.pop((record.eio_sid, record.nsp, record.ack_id, asked), None)
        if found is not None:
            note.pair = found[0]
            note.ms = round((record.ts - found[1]) * 1000, 3)
            self.ack_ms.append(note.ms)

    def _http_request(self, record: Record, client: Client | None, note: Note,
                      seq: int) -> None:
        if record.conn is None:
            return
        key = f"http {peer_host(record.get('peer'))} {record.get('user_agent') or '-'}"
        self._remember_conn(record.conn, key)
        note.client = key
        hook = self._client(key, "http", record.ts)
        hook.last = max(hook.last, record.ts)
        hook.transport = "http"
        hook.peer = peer_host(record.get("peer"))
        hook.user_agent = record.get("user_agent")
        if record.get("method") == "POST":
            hook.events_in += 1
            self._count(record.ts, "in")

    def _http(self, record: Record, client: Client | None, note: Note, seq: int) -> None:
        if record.get("engineio") or record.get("method") != "POST":
            return
        duration = record.get("duration_ms")
        if isinstance(duration, (int, float)):
            self.ingest_ms.append(float(duration))
        status = record.get("status")
        if client is not None and isinstance(status, int) and status >= 400:
            client.reason = f"last POST answered {status}"

    def _flag(self, record: Record, client: Client | None, note: Note, seq: int) -> None:
        kind = str(record.get("flag") or model.FLAG)
        self.flag_kinds[kind] += 1
        if client is not None:
            client.flags += 1
            client.last_flag = kind
        if kind != F.LOST:
            return
        code = str(record.get("code") or F.LOST_UNKNOWN)
        self.lost_codes[code] += 1
        self.lost_causes[code] = str(record.get("cause") or "")
        self.lost_causes.move_to_end(code)
        if code in LOST_AT_INGEST and note.client is not None:
            where = f"in:{note.client}"
        elif code in LOST_AT_INGEST or code in LOST_IN_SERVER:
            where = "server"
        else:
            where = "out"
        self.lost_at.setdefault(where, Counter())[code] += 1
        if len(self.lost_at) > 4 * FLOW_NODES:
            self.lost_at.pop(next(k for k in self.lost_at if k.startswith("in:")), None)

    def _summary(self, record: Record, client: Client | None, note: Note, seq: int) -> None:
        self.summary = dict(record.extra)

    def snapshot(self) -> dict[str, Any]:
        """Connections, flow, stats: everything the page draws besides the stream."""
        if self.summary_source is not None:
            self.summary = self.summary_source()
        clients = [c.describe() for c in self.clients.values()]
        # With --cluster, the analysis' view of it: this node, the others and their clients,
        # and how many events the others delivered for this one.
        cluster = self.summary.get("cluster")
        return {"clients": clients, "flow": self._flow(), "stats": self._stats(),
                "nsps": list(self.nsps), "cluster": cluster if isinstance(cluster, dict) else None}

    def _flow(self) -> dict[str, Any]:
        sources = [c for c in self.clients.values() if c.events_in]
        receivers = [c for c in self.clients.values()
                     if c.kind == "session" and c.role() != "hook"]
        lost_in: dict[str, Counter[str]] = {k[3:]: v for k, v in self.lost_at.items()
                                            if k.startswith("in:")}

        def node(client: Client, count: int) -> dict[str, Any]:
            lost = lost_in.get(client.id, Counter())
            return {"id": client.id, "role": client.role(), "count": count,
                    "open": client.state == "open", "peer": client.peer,
                    "lost": sum(lost.values()), "causes": self._causes(lost)}

        def top(nodes: list[dict[str, Any]]) -> dict[str, Any]:
            nodes.sort(key=lambda n: (not n["open"], -n["count"]))
            rest = nodes[FLOW_NODES:]
            return {"nodes": nodes[:FLOW_NODES], "more": len(rest),
                    "more_count": sum(n["count"] for n in rest)}

        server = self.lost_at.get("server", Counter())
        out = self.lost_at.get("out", Counter())
        return {
            "sources": top([node(c, c.events_in) for c in sources]),
            "receivers": top([node(c, self.sent_to.get(c.id, 0)) for c in receivers]),
            "in": self.totals["in"], "out": self.totals["out"],
            "lost_in_server": sum(server.values()), "server_causes": self._causes(server),
            "lost_towards_receivers": sum(out.values()), "out_causes": self._causes(out),
        }

    def _causes(self, counts: Counter[str]) -> list[dict[str, Any]]:
        return [{"code": code, "count": n, "cause": self.lost_causes.get(code, "")}
                for code, n in counts.most_common()]

    def _stats(self) -> dict[str, Any]:
        now = self.clock() if self.live else self.last_ts
        end = int(now)
        window = [self.per_second.get(s, [0, 0]) for s in range(end - RATE_WINDOW, end)]
        peak = max(self.per_second.values(), key=sum, default=[0, 0])
        relay = self.summary.get("expectations", {}).get("relay_latency", {}) \
            if isinstance(self.summary.get("expectations"), dict) else {}
        return {
            "rate_in": round(sum(b[0] for b in window) / RATE_WINDOW, 2),
            "rate_out": round(sum(b[1] for b in window) / RATE_WINDOW, 2),
            "peak_in": peak[0], "peak_out": peak[1],
            "events_in": self.totals["in"], "events_out": self.totals["out"],
            "ack_ms": percentiles(self.ack_ms), "ingest_ms": percentiles(self.ingest_ms),
            "relay_ms": relay,
            "lost": sum(self.lost_codes.values()), "lost_by_cause": dict(self.lost_codes),
            "flags": dict(self.flag_kinds), "reconnects": self.reconnects,
            "clients_open": sum(1 for c in self.clients.values()
                                if c.kind == "session" and c.state == "open"),
            "first_ts": self.first_ts, "last_ts": self.last_ts, "now": now,
        }


_Handler = Callable[[ViewState, Record, Client | None, Note, int], None]
_HANDLERS: dict[str, _Handler] = {
    model.EIO_OPEN: ViewState._eio_open,
    model.EIO_UPGRADE: ViewState._eio_upgrade,
    model.EIO_CLOSE: ViewState._eio_close,
    model.SIO_CONNECT: ViewState._sio_connect,
    model.SIO_CONNECT_OK: ViewState._sio_connect_ok,
    model.SIO_CONNECT_ERROR: ViewState._sio_connect_error,
    model.SIO_DISCONNECT: ViewState._sio_disconnect,
    model.SIO_EVENT: ViewState._sio_event,
    model.SIO_ACK: ViewState._sio_ack,
    model.HTTP_REQUEST: ViewState._http_request,
    model.HTTP: ViewState._http,
    model.FLAG: ViewState._flag,
    model.SUMMARY: ViewState._summary,
}
