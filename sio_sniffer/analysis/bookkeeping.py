"""What every part of the analyzer shares: the config, the session table, flags (with repeat
suppression), bounded tables (with their eviction count), the timer hooks and latency samples."""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sio_sniffer.analysis.config import AnalysisConfig
from sio_sniffer.analysis.sessions import SessionTable
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F
from sio_sniffer.model.stats import percentile

Emit = Callable[[Record], None]
# ``schedule(due, kind, key)``: the analyzer calls back the part that owns ``kind`` at ``due``.
Schedule = Callable[[float, str, Any], None]
# ``wake_by(due)``: something falls due at ``due``, so records from then on run the deadlines.
WakeBy = Callable[[float], None]


class Flagger:
    """Emits flags and counts them; a flag with a ``dedupe`` key is dropped (and counted as
    suppressed) when the same one was raised less than ``repeat`` seconds earlier."""

    def __init__(self, emit: Emit, repeat: float) -> None:
        self.emit = emit
        self.repeat = repeat
        self.last: OrderedDict[tuple[Any, ...], float] = OrderedDict()
        self.counts: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()

    def __call__(self, ts: float, kind: str, code: str, cause: str, hint: str,
                 where: Record | None = None, dedupe: tuple[Any, ...] | None = None,
                 **fields: Any) -> None:
        if dedupe is not None:
            key = (kind, *dedupe)
            last = self.last.get(key)
            if last is not None and ts - last < self.repeat:
                self.suppressed[kind] += 1
                return
            self.last[key] = ts
            self.last.move_to_end(key)
            while len(self.last) > 1024:
                self.last.popitem(last=False)
        self.counts[kind] += 1
        self.emit(F.make_flag(ts, kind, code, cause, hint, where, **fields))


@dataclass(frozen=True, slots=True)
class Shared:
    """The pieces the analyzer owns and hands to each of its parts."""

    config: AnalysisConfig
    sessions: SessionTable
    flag: Flagger
    bounds: Bounds
    emit: Emit
    schedule: Schedule
    wake_by: WakeBy


class Part:
    """A part of the analyzer: reads the shared pieces under their own names."""

    def __init__(self, shared: Shared) -> None:
        self.config = shared.config
        self.profile = shared.config.profile
        self.sessions = shared.sessions
        self.flag = shared.flag
        self.bounds = shared.bounds
        self.emit = shared.emit
        self.schedule = shared.schedule
        self.wake_by = shared.wake_by


class Bounds:
    """Caps insertion-ordered tables, oldest first, and counts what it evicts (the summary's
    ``evicted.pending``)."""

    def __init__(self, default: int) -> None:
        self.default = default
        self.evicted = 0

    def bound(self, table: OrderedDict[Any, Any], limit: int | None = None) -> None:
        cap = limit or self.default
        while len(table) > cap:
            table.popitem(last=False)
            self.evicted += 1


def bound_counter(counter: Counter[str], limit: int) -> None:
    """Keep the ``limit`` most common keys of ``counter``."""
    if len(counter) > limit:
        for key, _ in counter.most_common()[limit:]:
            del counter[key]


class Latencies:
    """The last N samples of a latency, for percentiles in the summary (bounded)."""

    def __init__(self, size: int) -> None:
        self.samples: deque[float] = deque(maxlen=size)
        self.count = 0
        # Hears every sample (a metrics histogram): the percentiles here keep only the last N.
        self.listener: Callable[[float], None] | None = None

    def add(self, value: float) -> None:
        self.samples.append(value)
        self.count += 1
        if self.listener is not None:
            self.listener(value)

    def describe(self) -> dict[str, Any]:
        if not self.samples:
            return {"count": self.count}
        ordered = sorted(self.samples)

        def ms(pct: float) -> float:
            value = percentile(ordered, pct, ordered=True)
            assert value is not None  # samples are not empty
            return round(value * 1000, 2)

        return {"count": self.count, "p50_ms": ms(50), "p95_ms": ms(95),
                "max_ms": round(ordered[-1] * 1000, 2)}
