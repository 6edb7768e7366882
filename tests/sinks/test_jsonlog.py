"""The JSON log sink's own rules (what the proxy tests do not reach)."""

from __future__ import annotations

import io
import json

from sio_sniffer import model
from sio_sniffer.model import Record
from sio_sniffer.sinks.jsonlog import JsonLogSink, LogFilter

T0 = 1_700_000_000.0


def test_the_summary_is_the_last_line() -> None:
    """Heartbeats are counted into an eio.heartbeats line; the count still open when the
    summary comes is written before it, so the summary ends the log."""
    stream = io.BytesIO()
    sink = JsonLogSink(stream, log_filter=LogFilter(verbose=False))
    for n in range(3):
        sink(Record(model.EIO_PING, T0 + n, eio_sid="s1", dir="out"))
        sink(Record(model.EIO_PONG, T0 + n, eio_sid="s1", dir="in"))
    sink(Record(model.SUMMARY, T0 + 4, extra={"records": 7}))
    sink.close(T0 + 5)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [model.EIO_HEARTBEATS, model.SUMMARY]
    assert lines[0]["pings"] == 3 and lines[0]["pongs"] == 3
