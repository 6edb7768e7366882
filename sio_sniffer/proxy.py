"""The Sniffer: relay + pipeline + analysis + sinks, wired the one-way the architecture asks for.

The relay forwards first and hands copies of what passed to ``_tap``; those copies are queued and
processed in a callback scheduled after the forwarding work of the same loop iteration, so
decoding, analysis and logging never sit between a read and the matching write. The queue is
worked off in slices of a few milliseconds: under a burst, forwarding gets the loop between
slices and the records follow a little later (their timestamps are the tap's, so they do not
change), instead of the whole burst waiting for its own decoding. A sink or
consumer that raises is reported once and cut off; traffic is never touched by it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sio_sniffer.model import Record
from sio_sniffer.pipeline import Pipeline, PipelineConfig
from sio_sniffer.transport.events import TapEvent
from sio_sniffer.transport.relay import PortInUseError, Relay

if TYPE_CHECKING:
    from sio_sniffer.analysis import AnalysisConfig

__all__ = ["PortInUseError", "ProxyConfig", "Sniffer"]

Sink = Callable[[Record], None]
TapSink = Callable[[TapEvent], None]

# How long one slice of decoding may hold the event loop before forwarding gets a turn, and how
# many tap events may wait before decoding stops yielding: past that the traffic waits for the
# decoder (memory stays bounded and nothing is dropped).
DRAIN_SLICE = 0.005
MAX_BACKLOG = 100_000

DEFAULT_PORT = 8766
DEFAULT_UPSTREAM = "http://127.0.0.1:8765"


def default_listen(port: int = DEFAULT_PORT) -> list[tuple[str, int]]:
    """Loopback on both IPv4 and IPv6: browsers resolve ``localhost`` to either."""
    return [("127.0.0.1", port), ("::1", port)]


@dataclass
class ProxyConfig:
    listen: list[tuple[str, int]] = field(default_factory=default_listen)
    upstream: str = DEFAULT_UPSTREAM
    path: str = "/socket.io/"
    verbose: bool = False
    ssl_listen: ssl.SSLContext | None = None
    # None turns analysis off (a plain decoding logger); the CLI always passes one.
    analysis: AnalysisConfig | None = None
    tick_interval: float = 0.1


class _Guarded:
    """Calls a consumer; the first exception is reported and the consumer is switched off."""

    __slots__ = ("_fn", "_name", "_report", "alive")

    def __init__(self, fn: Callable[[Any], None], name: str,
                 report: Callable[[str], None]) -> None:
        self._fn = fn
        self._name = name
        self._report = report
        self.alive = True

    def __call__(self, item: Any) -> None:
        if not self.alive:
            return
        try:
            self._fn(item)
        except Exception:
            self.alive = False
            self._report(f"sio-sniffer: {self._name} failed and was switched off; traffic is "
                         f"unaffected:\n{traceback.format_exc()}")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Sniffer:
    """A running sniffer. ``sinks`` hear every Record (analysis output included)."""

    def __init__(self, config: ProxyConfig, sinks: Sequence[Sink] = (),
                 tap_sinks: Sequence[TapSink] = (),
                 report: Callable[[str], None] = _stderr) -> None:
        self.config = config
        self._report = report
        self._sinks = [_Guarded(s, f"record sink {getattr(s, '__name__', type(s).__name__)}",
                                report) for s in sinks]
        self._tap_sinks = [_Guarded(s, f"tap sink {type(s).__name__}", report)
                           for s in tap_sinks]
        self._pipeline = Pipeline(PipelineConfig(path=config.path, verbose_http=config.verbose),
                                  self._record)
        self._feed = _Guarded(self._pipeline.feed, "decoder pipeline", report)
        self._analyzer: Any = None
        if config.analysis is not None:
            from sio_sniffer.analysis import Analyzer

            self._analyzer = Analyzer(config.analysis, self._analysis_record)
        self._analyze: _Guarded | None = None
        self._analysis_tick: _Guarded | None = None
        self._analysis_finish: _Guarded | None = None
        if self._analyzer is not None:
            self._analyze = _Guarded(self._analyzer.feed, "analysis", report)
            self._analysis_tick = _Guarded(self._analyzer.tick, "analysis tick", report)
            self._analysis_finish = _Guarded(self._analyzer.finish, "analysis finish", report)
        self._relay = Relay(config.upstream, config.listen, self._tap,
                            ssl_listen=config.ssl_listen)
        self._pending: collections.deque[TapEvent] = collections.deque()
        self._scheduled = False
        self._stopped = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._flushers: list[Callable[[], None]] = [
            f for f in (getattr(s, "flush", None) for s in (*sinks, *tap_sinks)) if f is not None
        ]
        self.stats = {"tap_events": 0, "records": 0}

    @property
    def bound(self) -> list[tuple[str, int]]:
        return self._relay.bound

    @property
    def url(self) -> str:
        host, port = self._relay.bound[0]
        scheme = "https" if self.config.ssl_listen is not None else "http"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    @property
    def analyzer(self) -> Any:
        return self._analyzer

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._relay.start()
        self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        """Close the listeners and connections, then let analysis and sinks finish. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await self._relay.stop()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._drain(everything=True)
        if self._analysis_finish is not None:
            self._analysis_finish(time.time())
        self._flush()

    def rooms(self) -> list[dict[str, Any]]:
        return list(self._analyzer.rooms()) if self._analyzer is not None else []

    def _tap(self, event: TapEvent) -> None:
        # Called by the relay right after it forwarded the bytes: only queue here.
        self._pending.append(event)
        if not self._scheduled and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._drain)

    def _drain(self, everything: bool = False) -> None:
        self._scheduled = False
        pending = self._pending
        clock = time.perf_counter
        deadline = clock() + DRAIN_SLICE
        done = 0
        while pending:
            event = pending.popleft()
            for tap_sink in self._tap_sinks:
                tap_sink(event)
            self._feed(event)
            done += 1
            if not everything and clock() >= deadline and len(pending) < MAX_BACKLOG:
                break
        self.stats["tap_events"] += done
        if pending and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._drain)

    def _record(self, record: Record) -> None:
        self.stats["records"] += 1
        if self._analyze is not None:
            self._analyze(record)
        for sink in self._sinks:
            sink(record)

    def _analysis_record(self, record: Record) -> None:
        self.stats["records"] += 1
        for sink in self._sinks:
            sink(record)

    def _flush(self) -> None:
        for flush in self._flushers:
            try:
                flush()
            except Exception as exc:
                self._report(f"sio-sniffer: flushing a sink failed: {exc}")

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.tick_interval)
            if self._analysis_tick is not None:
                # The analysis clock must not run ahead of records still queued: a deadline
                # would otherwise pass for an event whose answer is waiting to be decoded.
                self._analysis_tick(self._pending[0].ts if self._pending else time.time())
            self._flush()

