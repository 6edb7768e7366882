"""The observing half of the sniffer: tap events in; decoding, analysis and sinks.

It never touches traffic. In the in-process :class:`~sio_sniffer.pipeline.sniffer.Sniffer` the
relay feeds it directly; in the `proxy` command it runs in a second process
(:mod:`sio_sniffer.proxy.worker`) fed through a pipe, so forwarding keeps its own process to itself.

Tap events are queued and worked off in slices of a few milliseconds in a callback scheduled
after the current loop iteration: under a burst whatever shares the loop (the relay, in-process)
gets turns between slices, and the records follow a little later with the tap's timestamps,
unchanged. Records go on through the :class:`~sio_sniffer.pipeline.chain.Chain` that ``report``
and ``replay`` use too; a sink or consumer that raises is reported once and cut off.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sio_sniffer.model import Record
from sio_sniffer.model.tap import TapEvent
from sio_sniffer.pipeline.chain import Chain, Guarded, Sink, sink_name, stderr_report
from sio_sniffer.pipeline.decode import Pipeline, PipelineConfig

if TYPE_CHECKING:
    from sio_sniffer.analysis import AnalysisConfig
    from sio_sniffer.cluster import ClusterConfig, ClusterLink

__all__ = ["Observer", "Sink", "TapSink", "stderr_report"]

TapSink = Callable[[TapEvent], None]

# How long one slice of decoding may hold the event loop before others get a turn, and how many
# tap events may wait before decoding stops yielding: past that the producer waits for the
# decoder (memory stays bounded and nothing is dropped).
DRAIN_SLICE = 0.005
MAX_BACKLOG = 100_000


class Observer:
    """Tap events → Pipeline → Analyzer → sinks. ``sinks`` hear every Record, flags included."""

    def __init__(self, *, path: str = "/socket.io/", verbose: bool = False,
                 analysis: AnalysisConfig | None = None, sinks: Sequence[Sink] = (),
                 tap_sinks: Sequence[TapSink] = (), tick_interval: float = 0.1,
                 report: Callable[[str], None] = stderr_report,
                 cluster: ClusterConfig | None = None) -> None:
        self._report = report
        self._tick_interval = tick_interval
        self._tap_sinks = [Guarded(s, f"tap sink {sink_name(s)}", report) for s in tap_sinks]
        self.cluster: ClusterLink | None = None
        if cluster is not None:
            from sio_sniffer.cluster import ClusterLink

            self.cluster = ClusterLink(cluster, self.chain_fact, self.chain_record,
                                       self.analysis_now, lambda m: report(f"sio-sniffer: {m}"))
            sinks = [*sinks, self.cluster.record]
        self.chain = Chain(analysis, sinks, report)
        self.analyzer: Any = self.chain.analyzer
        self._pipeline = Pipeline(PipelineConfig(path=path, verbose_http=verbose),
                                  self.chain.record)
        self._feed = Guarded(self._pipeline.feed, "decoder pipeline", report)
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
        self._tap_events = 0

    def start(self) -> None:
        """Begin the periodic tick (analysis deadlines, sink flushes). Needs a running loop."""
        self._loop = asyncio.get_running_loop()
        self._ticker = self._loop.create_task(self._tick_loop())
        if self.cluster is not None:
            self.cluster.start()

    def chain_fact(self, record: Record) -> None:
        self.chain.fact(record)

    def chain_record(self, record: Record) -> None:
        self.chain.record(record)

    async def finish(self) -> None:
        """Work off everything queued, let the analysis conclude, flush. Idempotent."""
        if self._finished:
            return
        self._finished = True
        if self.cluster is not None:
            await self.cluster.stop()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        self._drain(everything=True)
        self.chain.finish(time.time())
        self._flush()

    def rooms(self) -> list[dict[str, Any]]:
        return self.chain.rooms()

    @property
    def stats(self) -> dict[str, int]:
        """Tap events worked off, and records handed to the sinks."""
        return {"tap_events": self._tap_events, "records": self.chain.records}

    def tracked(self) -> dict[str, int]:
        """Connections and Engine.IO sessions the decoder holds state for (bounded)."""
        return self._pipeline.tracked()

    def tracks(self, key: str) -> bool:
        """Whether the decoder still holds state for a connection id or Engine.IO sid."""
        return self._pipeline.tracks(key)

    @property
    def backlog(self) -> int:
        """Tap events queued and not yet worked off."""
        return len(self._pending)

    def lag(self) -> float:
        """Seconds the oldest copy not yet worked off has waited (0 when none waits): how far
        the records are behind the relay."""
        if not self._pending:
            return 0.0
        return max(0.0, time.time() - self._pending[0].ts)

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
        self._tap_events += done
        if pending and self._loop is not None:
            self._scheduled = True
            self._loop.call_soon(self._drain)

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
            self.chain.tick(self.analysis_now())
            self._flush()
