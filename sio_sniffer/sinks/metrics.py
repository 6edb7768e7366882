"""Prometheus metrics and the health state of a running proxy: record sinks of the one chain.

Both live where the records are (the observer process, or the relay's with
``--single-process``): every counter is counted from the same records the JSON log writes, so a
scrape and the log agree. The relay process's own figures reach this process anyway: bytes
relayed are counted from the copies (``relayed``), and copies the relay dropped arrive as gap
frames (``dropped``). That is why prometheus_client's multiprocess mode is not used: it would
need a directory of memory-mapped files shared by the processes and a write into them for every
increment, for numbers that already cross the pipe.

The figures that are state rather than counts (connected clients, observer lag, bytes relayed)
are read when scraped, through callables, by a custom collector; the scrape is served on the
observer's own event loop, so reading them needs no lock.
"""

from __future__ import annotations

import bisect
import platform
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Info, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from sio_sniffer import __version__, model
from sio_sniffer.model import Record
from sio_sniffer.model.probes import SNIFFER_502_PREFIX
from sio_sniffer.model.tap import Direction

OTHER = "other"
# Event names and namespaces are the app's, unbounded in principle (a name per user id would
# make a series per user): the first ones seen get their own label value, the rest `other`.
MAX_NAMES = 100
MAX_NAMESPACES = 20
MAX_EVENT_CHILDREN = 4 * MAX_NAMES  # (dir, nsp, name) keys whose counter child is kept at hand
# A session that opens from the same host and user agent within this long of one closing is
# counted as a reconnect; older ones are forgotten (bounded).
RECONNECT_WINDOW = 60.0
MAX_REMEMBERED = 4096
# Seconds: relay latency (an event in, its copy out) and ack latency span a local server's
# sub-millisecond answers to a stalled one's seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)


@dataclass
class Sources:
    """What is read at scrape time, from the processes' live objects (wired by the proxy)."""

    relay_up: Callable[[], bool] = lambda: True
    lag: Callable[[], float] = lambda: 0.0  # seconds the observer is behind the relay
    backlog: Callable[[], int] = lambda: 0  # copies queued in the observer
    relayed: Callable[[], Mapping[Direction, int]] = lambda: {"in": 0, "out": 0}
    dropped: Callable[[], int] = lambda: 0  # bytes of copies the relay dropped
    clients: Callable[[], Iterable[tuple[str, str]]] = lambda: ()  # (role, transport) each


@dataclass
class Upstream:
    """The upstream's last known state: reachable or not, since when (record time)."""

    state: str = "unknown"  # "reachable" or "unreachable" once traffic said so
    since: float | None = None
    reason: str | None = None

    def saw(self, state: str, ts: float, reason: str | None = None) -> None:
        if state != self.state:
            self.state, self.since = state, ts
        self.reason = reason


class Health:
    """A record sink that follows the upstream's state; ``report()`` is what /healthz says."""

    def __init__(self, sources: Sources) -> None:
        self.sources = sources
        self.upstream = Upstream()

    def __call__(self, record: Record) -> None:
        kind = record.event
        if kind == model.UPSTREAM_ERROR:
            self.upstream.saw("unreachable", record.ts, record.get("reason"))
        elif kind == model.HTTP:
            body = record.get("body")
            if not (record.get("status") == 502 and isinstance(body, str)
                    and body.startswith(SNIFFER_502_PREFIX)):
                self.upstream.saw("reachable", record.ts)
        elif kind in (model.EIO_OPEN, model.WS_OPEN) or record.dir == "out":
            # only the server answers a handshake or sends anything out (every copy out
            # passes here: nothing to do while it was reachable already)
            upstream = self.upstream
            if upstream.state != "reachable" or upstream.reason is not None:
                upstream.saw("reachable", record.ts)

    def report(self) -> tuple[int, dict[str, Any]]:
        """HTTP status (200 while the relay runs, 503 once it stopped) and the JSON body."""
        up = self.sources.relay_up()
        upstream: dict[str, Any] = {"state": self.upstream.state}
        if self.upstream.since is not None:
            upstream["since"] = model.iso_ts(self.upstream.since)
        if self.upstream.reason:
            upstream["reason"] = self.upstream.reason
        body = {"status": "ok" if up else "relay_stopped", "relay": {"up": up},
                "observer": {"lag_seconds": round(self.sources.lag(), 3),
                             "backlog": self.sources.backlog()},
                "upstream": upstream}
        return (200 if up else 503), body


class _Bounded:
    """Label values as they come, up to ``limit`` distinct ones; past it, ``other``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self.seen:
            return value
        if len(self.seen) >= self.limit:
            return OTHER
        self.seen.add(value)
        return value


class _Live(Collector):
    """The scrape-time figures (see the module's doc)."""

    def __init__(self, sources: Sources, health: Health) -> None:
        self.sources = sources
        self.health = health

    def collect(self) -> Iterator[Metric]:
        src = self.sources
        clients = GaugeMetricFamily("sio_sniffer_clients", "Engine.IO sessions open now",
                                    labels=["role", "transport"])
        counts: dict[tuple[str, str], int] = {}
        for key in src.clients():
            counts[key] = counts.get(key, 0) + 1
        for (role, transport), n in sorted(counts.items()):
            clients.add_metric([role, transport], n)
        yield clients
        yield GaugeMetricFamily("sio_sniffer_observer_lag_seconds",
                                "How far the observer is behind the relay (age of the oldest "
                                "copy not yet worked off)", value=src.lag())
        yield GaugeMetricFamily("sio_sniffer_observer_backlog",
                                "Copies queued in the observer", value=src.backlog())
        yield CounterMetricFamily("sio_sniffer_copies_dropped_bytes",
                                  "Bytes of copies the relay dropped past --observer-buffer "
                                  "(traffic was forwarded)", value=src.dropped())
        relayed = CounterMetricFamily("sio_sniffer_relayed_bytes",
                                      "Bytes relayed, per direction (in: client to server)",
                                      labels=["dir"])
        for direction, n in sorted(src.relayed().items()):
            relayed.add_metric([direction], n)
        yield relayed
        yield GaugeMetricFamily("sio_sniffer_relay_up", "1 while the relay runs",
                                value=1 if src.relay_up() else 0)
        upstream = self.health.upstream
        up = GaugeMetricFamily("sio_sniffer_upstream_up",
                               "1 reachable, 0 unreachable, as traffic last showed (absent "
                               "before any)")
        if upstream.state != "unknown":
            up.add_metric([], 1 if upstream.state == "reachable" else 0)
        yield up


class _Latency(Collector):
    """A histogram of one latency, counted in plain lists and rendered when scraped.

    The analysis hands it every sample (one per relayed copy, so tens of thousands a second
    under a burst); prometheus_client's Histogram takes a lock per bucket and per sum on each
    observation, which cost the observer 4x this. The scrape runs on the loop that observes,
    so nothing is shared across threads. Exposed as prometheus_client's Histogram would be
    (``_bucket`` with ``le``, ``_count``, ``_sum``), without ``_created``.
    """

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one: past every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    def collect(self) -> Iterator[Metric]:
        cumulative, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            # as prometheus_client writes ``le`` (Go's float format for these bounds)
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=cumulative,
                                    sum_value=self.sum)


@dataclass
class _Reconnects:
    """Sessions by (host, user agent), to tell a client coming back from a new one."""

    open: OrderedDict[str, tuple[str, str]] = field(default_factory=OrderedDict)
    gone: OrderedDict[tuple[str, str], float] = field(default_factory=OrderedDict)

    def opened(self, record: Record) -> bool:
        peer = str(record.get("peer") or "")
        key = (peer.rsplit(":", 1)[0], str(record.get("user_agent") or ""))
        if record.eio_sid is not None:
            self.open[record.eio_sid] = key
            _bound(self.open)
        closed = self.gone.pop(key, None)
        return closed is not None and record.ts - closed <= RECONNECT_WINDOW

    def closed(self, record: Record) -> None:
        key = self.open.pop(record.eio_sid or "", None)
        if key is not None:
            self.gone[key] = record.ts
            _bound(self.gone)


def _bound(table: OrderedDict[Any, Any]) -> None:
    while len(table) > MAX_REMEMBERED:
        table.popitem(last=False)


class Metrics:
    """A record sink counting into its own registry; ``exposition()`` is the /metrics body."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, health: Health, *, ingest_paths: Iterable[str] = (),
                 loop: str = "", mode: str = "") -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.events = Counter("sio_sniffer_events", "Socket.IO events, per direction, namespace "
                              "and name (names past the first 100 under 'other')",
                              ["dir", "nsp", "name"], registry=reg)
        self.ingests = Counter("sio_sniffer_ingests", "Hook POSTs to an ingest path, by the "
                               "HTTP status they were answered with", ["status"], registry=reg)
        self.lost = Counter("sio_sniffer_lost", "Events flagged lost, by cause code", ["code"],
                            registry=reg)
        self.flags = Counter("sio_sniffer_flags", "Flags raised, by kind", ["kind"],
                             registry=reg)
        self.relay_latency = _Latency("sio_sniffer_relay_latency_seconds",
                                      "An event in to its copy out", LATENCY_BUCKETS)
        self.ack_latency = _Latency("sio_sniffer_ack_latency_seconds",
                                    "An event asking for an ack to its ack", LATENCY_BUCKETS)
        reg.register(self.relay_latency)
        reg.register(self.ack_latency)
        self.reconnects = Counter("sio_sniffer_reconnects", "Sessions opened from the host and "
                                  "user agent of one that closed within the last 60 s",
                                  registry=reg)
        self.decode_errors = Counter("sio_sniffer_decode_errors", "Bytes that did not decode "
                                     "(forwarded untouched), by layer", ["layer"], registry=reg)
        Info("sio_sniffer_build", "The sniffer that serves these metrics",
             registry=reg).info({"version": __version__, "python": platform.python_version(),
                                 "loop": loop, "mode": mode})
        reg.register(_Live(health.sources, health))
        self._ingest_paths = frozenset(p.rstrip("/") for p in ingest_paths)
        self._names = _Bounded(MAX_NAMES)
        self._nsps = _Bounded(MAX_NAMESPACES)
        # (dir, nsp, name) as the records say them -> the counter's child: every event passes
        # here, and ``labels()`` (validation, a lock, a tuple) was most of the sink's time.
        # Bounded like the label values: past it, the slow path (same counts).
        self._event_children: dict[tuple[str | None, str | None, str | None], Any] = {}
        self._reconnects = _Reconnects()

    def __call__(self, record: Record) -> None:
        kind = record.event
        if kind == model.SIO_EVENT:
            key = (record.dir, record.nsp, record.name)
            child = self._event_children.get(key)
            if child is None:
                child = self.events.labels(record.dir or "", self._nsps(record.nsp or "/"),
                                           self._names(record.name or ""))
                if len(self._event_children) < MAX_EVENT_CHILDREN:
                    self._event_children[key] = child
            child.inc()
        elif kind == model.FLAG:
            flag = str(record.get("flag"))
            self.flags.labels(flag).inc()
            if flag == "lost":
                self.lost.labels(str(record.get("code"))).inc()
        elif kind == model.HTTP:
            path = record.get("path")
            if (record.get("method") == "POST" and isinstance(path, str)
                    and path.rstrip("/") in self._ingest_paths):
                self.ingests.labels(str(record.get("status"))).inc()
        elif kind == model.EIO_OPEN:
            if self._reconnects.opened(record):
                self.reconnects.inc()
        elif kind == model.EIO_CLOSE:
            self._reconnects.closed(record)
        elif kind == model.DECODE_ERROR:
            self.decode_errors.labels(str(record.get("layer") or "unknown")).inc()

    def exposition(self) -> bytes:
        """The Prometheus text format, as prometheus_client renders it."""
        return generate_latest(self.registry)

