"""The JSON log sink's own rules (what the proxy tests do not reach)."""

from __future__ import annotations

import io
import json

from sio_sniffer import model
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F
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


def pretty_lines(*records: Record, colour: bool = False) -> str:
    import os

    os.environ.pop("NO_COLOR", None)
    os.environ["FORCE_COLOR" if colour else "NO_COLOR"] = "1"
    try:
        stream = io.BytesIO()
        sink = JsonLogSink(stream, pretty=True)
        for record in records:
            sink(record)
        sink.close(T0 + 100)
        return stream.getvalue().decode()
    finally:
        os.environ.pop("FORCE_COLOR", None)
        os.environ.pop("NO_COLOR", None)


def test_pretty_writes_json_values() -> None:
    text = pretty_lines(Record(model.SIO_EVENT, T0, conn="c1", nsp="/", name="tool", dir="in",
                               args=[{"a": None, "b": True}], extra={"peer": "my host"}))
    assert 'args=[{"a":null,"b":true}]' in text and 'peer="my host"' in text
    assert "None" not in text and "True" not in text


def test_pretty_colours_flags_by_severity() -> None:
    lost = F.make_flag(T0, F.LOST, F.LOST_NO_RECEIVERS, "nobody was connected", "open it")
    late = F.make_flag(T0 + 1, F.LATE, "late", "arrived 2.1 s late", "look at the server")
    info = F.make_flag(T0 + 2, F.UNLISTENED_EVENT, "unlistened", "nobody listens", "add one")
    text = pretty_lines(lost, late, info, colour=True)
    assert "\x1b[1;31m⚑ lost" in text and "\x1b[1;31mcause:\x1b[0m nobody was connected" in text
    assert "\x1b[1;33m⚑ late" in text and "\x1b[1;36m⚑ unlistened_event" in text
    plain = pretty_lines(lost)
    assert "\x1b[" not in plain  # NO_COLOR, and never on a file that is not a terminal
    assert plain.splitlines()[1:] == ["             cause: nobody was connected",
                                      "             fix: open it"]


def test_every_flag_kind_has_a_severity() -> None:
    assert set(F.SEVERITY) == set(F.KINDS)
    assert set(F.SEVERITY.values()) == {F.PROBLEM, F.WARNING, F.INFO}


def test_pretty_summary_is_one_line_a_section() -> None:
    summary = Record(model.SUMMARY, T0, extra={
        "duration_s": 2.5, "records": 40, "sessions": {"total": 2, "open_by_role": {}},
        "flags": {}, "notes": ["no POST reached /api/events", "second note"]})
    lines = pretty_lines(summary).splitlines()
    assert lines[0].endswith("summary")
    assert lines[1:] == ["             duration_s=2.5 records=40",
                         "             sessions: total=2",
                         "             notes: no POST reached /api/events",
                         "             notes: second note"]


def fetch(event: str, ts: float, conn: str, path: str, kind: str = "asset",
          status: int = 200) -> Record:
    extra: dict[str, object] = {"method": "GET", "path": path, "fetch": kind, "page": "/"}
    if event == model.HTTP_REQUEST:
        extra.update(peer=f"127.0.0.1:{40000 + int(conn[1:])}", user_agent="Chrome")
    else:
        extra.update(status=status, bytes=100, engineio=False)
    return Record(event, ts, conn=conn, extra=extra)


def page_load(start: float, missing: str | None = None) -> list[Record]:
    records = [fetch(model.HTTP_REQUEST, start, "c1", "/", "document"),
               fetch(model.HTTP, start + 0.01, "c1", "/", "document")]
    for n, path in enumerate(("/app.js", "/app.css", "/logo.svg")):
        conn = f"c{n + 2}"
        records.append(fetch(model.HTTP_REQUEST, start + 0.02, conn, path))
        records.append(fetch(model.HTTP, start + 0.03, conn, path,
                             status=404 if path == missing else 200))
    return records


def test_a_reload_is_a_second_page_load_and_failures_are_named() -> None:
    stream = io.BytesIO()
    sink = JsonLogSink(stream)
    for record in [*page_load(T0, missing="/logo.svg"), *page_load(T0 + 0.5)]:
        sink(record)
    sink(Record(model.SUMMARY, T0 + 0.6, extra={"records": 16}))
    sink.close(T0 + 0.7)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [model.HTTP_PAGE, model.HTTP_PAGE, model.SUMMARY]
    first, second = lines[0], lines[1]
    assert first["assets"] == 3 and first["failed"] == 1 and first["conns"] == 4
    assert first["failed_fetches"] == [{"path": "/logo.svg", "status": 404}]
    assert first["statuses"] == {"200": 3, "404": 1}
    assert second["failed"] == 0 and "failed_fetches" not in second
