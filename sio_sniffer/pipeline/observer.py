"""The observing half of the sniffer: tap events in; decoding, analysis and sinks.

It never touches traffic. In the in-process :class:`~sio_sniffer.pipeline.sniffer.Sniffer` the
relay feeds it directly; in the `proxy` command it runs in a second process
(:mod:`sio_sniffer.proxy.worker`) fed through a pipe, so forwarding keeps its own process to itself.

Tap events are queued and worked off in slices of a few milliseconds in a callback scheduled
after the current loop iteration: under a burst whatever shares the loop (the relay, in-process)
gets turns between slices, and the records follow a little later with the tap's timestamps,
unchanged. A sink or consumer that raises is reported once and cut off.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sio_sniffer.model import Record
from sio_sniffer.model.tap import TapEvent
from sio_sniffer.pipeline.decode import Pipeline, PipelineConfig

if TYPE_CHECKING:
    from sio_sniffer.analysis import AnalysisConfig

Sink = Callable[[Record], None]
TapSink = Callable[[TapEvent], None]

# How long one slice of decoding may hold the event loop before others get a turn, and how many
# tap events may wait before decoding stops yielding: past that the producer waits for the
# decoder (memory stays bounded and nothing is dropped).
DRAIN_SLICE = 0.005
MAX_BACKLOG = 100_000


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


def stderr_report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Observer:
    """Tap events → Pipeline → Analyzer → sinks. ``sinks`` hear every Record, flags included."""

    def __init__(self, *, path: str = "/socket.io/", verbose: bool = False,
                 analysis: AnalysisConfig | None = None, sinks: Sequence[Sink] = (),
                 tap_sinks: Sequence[TapSink] = (), tick_interval: float = 0.1,
                 report: Callable[[str], None] = stderr_report) -> None:
        self._report = report
        self._tick_interval = tick_interval
        self._sinks = [_Guarded(s, f"record sink {getattr(s, '__name__', type(s).__name__)}",
                                report) for s in sinks]
        self._tap_sinks = [_Guarded(s, f"tap sink {type(s).__name__}", report)
                           for s in tap_sinks]
        self._pipeline = Pipeline(PipelineConfig(path=path, verbose_http=verbose), self._record)
        self._feed = _Guarded(self._pipeline.feed, "decoder pipeline", report)
        self.analyzer: Any = None
        self._analyze: _Guarded | None = None
        self._analysis_tick: _Guarded | None = None
        self._analysis_finish: _Guarded | None = None
        if analysis is not None:
            from sio_sniffer.analysis import Analyzer

            self.analyzer = Analyzer(analysis, self._analysis_record)
            self._analyze = _Guarded(self.analyzer.feed, "analysis", report)
            self._analysis_tick = _Guarded(self.analyzer.tick, "analysis tick", report)
            self._analysis_finish = _Guarded(self.analyzer.finish, "analysis finish", report)
        self._pending: collections.deque[TapEvent] = collections.deque()
        self._scheduled = False
        self._finished = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._flushers: list[Callable[[], None]] = [
            f for f in (getattr(s, "flush", None) for s in (*sinks, *tap_sinks)) if f is not None
        ]
        # The traffic time of the newest event worked off, and when (wall clock) that was.
        self._last_ts = 0.0
        self._last_wall = 0.0
        self.stats = {"tap_events": 0, "records": 0}

    def start(self) -> None:
        """Begin the periodic tick (analysis deadlines, sink flushes). Needs a running loop."""
        self._loop = asyncio.get_running_loop()
        self._ticker = self._loop.create_task(self._tick_loop())

    async def finish(self) -> None:
        """Work off everything queued, let the analysis conclude, flush. Idempotent."""
        if self._finished:
            return
        self._finished = True
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._drain(everything=True)
        if self._analysis_finish is not None:
            self._analysis_finish(time.time())
        self._flush()

    def rooms(self) -> list[dict[str, Any]]:
        return list(self.analyzer.rooms()) if self.analyzer is not None else []

    @property
    def backlog(self) -> int:
        """Tap events queued and not yet worked off."""
        return len(self._pending)

    def tap(self, event: TapEvent) -> None:
        """A copy of what passed: only queued here (the caller may be the forwarding path)."""
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
            self._last_ts = event.ts
            done += 1
            if not everything and clock() >= deadline and len(pending) < MAX_BACKLOG:
                break
        if done:
            self._last_wall = time.time()
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

    def analysis_now(self) -> float:
        """The analysis clock. It must not run ahead of traffic not yet worked off, or a
        deadline would pass for an event whose answer is still waiting to be decoded: while
        events are queued, or kept arriving in the last tick, it is the traffic's own time."""
        if self._pending:
            return self._pending[0].ts
        now = time.time()
        if now - self._last_wall < 2 * self._tick_interval:
            return min(now, self._last_ts + (now - self._last_wall))
        return now

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval)
            if self._analysis_tick is not None:
                self._analysis_tick(self.analysis_now())
            self._flush()
