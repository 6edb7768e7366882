"""The one step after decoding: records → analysis → guarded sinks.

The live observer, ``report`` and ``replay`` all hand their records to a :class:`Chain`, so a
record reaches the analysis and the sinks the same way wherever it comes from, and a sink or a
consumer that raises is reported once and switched off the same way (traffic, or the rest of a
report, goes on without it).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sio_sniffer.model import Record

if TYPE_CHECKING:
    from sio_sniffer.analysis import AnalysisConfig, Analyzer

Sink = Callable[[Record], None]


def stderr_report(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def sink_name(sink: Any) -> str:
    return str(getattr(sink, "__name__", None) or type(sink).__name__)


class Guarded:
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


class Chain:
    """Records in; the analysis (when configured) and every sink hear them, flags included."""

    def __init__(self, analysis: AnalysisConfig | None, sinks: Sequence[Sink] = (),
                 report: Callable[[str], None] = stderr_report) -> None:
        self.report = report
        self.sinks = [Guarded(s, f"record sink {sink_name(s)}", report) for s in sinks]
        # Sinks that keep facts as well (a capture, so that `report` judges as live did).
        self.fact_sinks = [Guarded(f, f"fact sink {sink_name(s)}", report) for s in sinks
                           if callable(f := getattr(s, "fact", None))]
        self.analyzer: Analyzer | None = None
        self._analyze: Guarded | None = None
        self._tick: Guarded | None = None
        self._finish: Guarded | None = None
        self.records = 0  # records handed to the sinks, the analysis' own included
        if analysis is not None:
            from sio_sniffer.analysis import Analyzer

            self.analyzer = Analyzer(analysis, self._analysis_record)
            self._analyze = Guarded(self.analyzer.feed, "analysis", report)
            self._tick = Guarded(self.analyzer.tick, "analysis tick", report)
            self._finish = Guarded(self.analyzer.finish, "analysis finish", report)

    def record(self, record: Record) -> None:
        """A record of the traffic: analysed first, so its flags follow it in the sinks."""
        self.records += 1
        if self._analyze is not None:
            self._analyze(record)
        for sink in self.sinks:
            sink(record)

    def fact(self, record: Record) -> None:
        """A fact for the analysis (what the cluster's other nodes saw): not traffic, so not
        logged; a capture keeps it (sinks with a ``fact`` method) for `report`."""
        if self._analyze is not None:
            self._analyze(record)
        for sink in self.fact_sinks:
            sink(record)

    def _analysis_record(self, record: Record) -> None:
        self.records += 1
        for sink in self.sinks:
            sink(record)

    def tick(self, now: float) -> None:
        """The analysis clock moved to ``now`` (deadlines that passed become flags)."""
        if self._tick is not None:
            self._tick(now)

    def finish(self, now: float) -> None:
        """No more records: the analysis concludes (its rooms and summary records)."""
        if self._finish is not None:
            self._finish(now)

    def unjudged(self) -> list[dict[str, Any]]:
        """What the analysis could not judge yet (see :meth:`Analyzer.unjudged`)."""
        return self.analyzer.unjudged() if self.analyzer is not None else []

    def rooms(self) -> list[dict[str, Any]]:
        return list(self.analyzer.rooms()) if self.analyzer is not None else []
