"""Bounded state: a long run keeps the analyzer's memory flat."""

from __future__ import annotations

import gc
import tracemalloc

from sio_sniffer.analysis import AnalysisConfig, Analyzer
from sio_sniffer.model import Record
from sio_sniffer.testing import records


def test_memory_is_flat_over_a_long_run() -> None:
    """Once the tables are full, as many records again (lost events, reconnects) add < 256 KiB."""
    flags = 0

    def emit(record: Record) -> None:
        nonlocal flags
        flags += record.event == "flag"

    # Small caps so that every table reaches its bound during the warm-up.
    config = AnalysisConfig(max_closed_sessions=8, max_recent_emits=32, max_rooms=8,
                            latency_samples=256)
    analyzer = Analyzer(config, emit)
    stream = records(16_000, step=0.002)
    tracemalloc.start()
    try:
        for _, record in zip(range(8_000), stream, strict=False):
            analyzer.feed(record)
        gc.collect()
        warm, _ = tracemalloc.get_traced_memory()
        for record in stream:
            analyzer.feed(record)
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert flags > 100  # the load really goes through the lost-event path
    assert len(analyzer.sessions.closed) == 8
    assert end - warm < 256 * 1024, f"grew {end - warm} bytes"
