"""Capture file writer and reader: round trip, secrets, durability, bad input."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest

from sio_sniffer.capture import (
    FORMAT,
    CaptureError,
    CaptureReader,
    CaptureWriter,
    capture_id_of,
    fingerprint,
    merge,
)
from sio_sniffer.model import Record
from sio_sniffer.model.tap import (
    ConnClose,
    ConnOpen,
    HttpRequest,
    HttpResponse,
    TapError,
    UpstreamError,
    WsControl,
    WsMessage,
    WsOpen,
)
from tests.paths import ROOT

T0 = 1_718_000_000.25


def _request(body: bytes = b"", target: str = "/socket.io/?EIO=4&transport=polling") -> HttpRequest:
    return HttpRequest(
        conn="c1", seq=0, ts=T0 + 0.1, method="POST" if body else "GET", target=target,
        version="1.1", headers=(("Host", "x"), ("Cookie", "session=abc"),
                                ("Authorization", "Bearer s3cret")),
        body=body,
    )


def _all_events() -> list[object]:
    req = _request(b'40{"token":"s3cret"}\x1e42["hello",1]')
    upgrade = HttpRequest(conn="c2", seq=0, ts=T0 + 0.3, method="GET",
                          target="/socket.io/?EIO=4&transport=websocket", version="1.1",
                          headers=(("Upgrade", "websocket"),), body=b"")
    return [
        ConnOpen(conn="c1", ts=T0, peer="127.0.0.1:5000"),
        req,
        HttpResponse(conn="c1", seq=0, ts=T0 + 0.2, status=200, reason="OK",
                     headers=(("Set-Cookie", "io=1; Path=/"),), body=b"ok", request=req),
        ConnOpen(conn="c2", ts=T0 + 0.25, peer="127.0.0.1:5001", tls=False),
        WsOpen(conn="c2", ts=T0 + 0.35, request=upgrade, response_headers=(("A", "b"),),
               deflate=True),
        WsMessage(conn="c2", ts=T0 + 0.4, dir="in", opcode=1, payload='42["é"]'.encode(),
                  wire_size=14),
        WsMessage(conn="c2", ts=T0 + 0.5, dir="out", opcode=2, payload=b"\x00\xff\x01",
                  wire_size=5),
        WsControl(conn="c2", ts=T0 + 0.6, dir="out", opcode=8, payload=b"\x03\xe8",
                  close_code=1000, close_reason="bye"),
        TapError(conn="c2", ts=T0 + 0.7, dir="in", layer="websocket", reason="bad frame",
                 raw=b"\x88\x80", offset=3),
        ConnClose(conn="c2", ts=T0 + 0.8, by="client"),
        UpstreamError(conn="c3", ts=T0 + 0.9, url="http://127.0.0.1:1", reason="refused"),
    ]


def test_round_trip_with_secrets_recreates_every_tap_event(tmp_path: Path) -> None:
    """With show_secrets every tap event type reads back equal to what was written."""
    path = tmp_path / "cap.jsonl"
    writer = CaptureWriter(path, upstream="http://up", show_secrets=True)
    events = _all_events()
    for ev in events:
        writer.tap(ev)  # type: ignore[arg-type]
    writer.close()
    reader = CaptureReader(path)
    assert list(reader) == events
    assert reader.problems == []
    assert reader.header is not None and reader.header.upstream == "http://up"
    assert reader.header.show_secrets is True


def test_secrets_are_fingerprinted_by_default(tmp_path: Path) -> None:
    """Cookie/Authorization/Set-Cookie values and CONNECT auth are stored only as fingerprints."""
    path = tmp_path / "cap.jsonl"
    writer = CaptureWriter(path, upstream="http://up")
    packed = msgpack.packb({"type": 0, "nsp": "/", "data": {"token": "s3cret"}})
    for ev in _all_events():
        writer.tap(ev)  # type: ignore[arg-type]
    writer.tap(WsMessage(conn="c4", ts=T0 + 1, dir="in", opcode=1,
                         payload=b'40/admin,{"token":"s3cret","n":1}', wire_size=30))
    writer.tap(WsMessage(conn="c4", ts=T0 + 1, dir="in", opcode=2, payload=packed, wire_size=30))
    writer.close()
    text = path.read_text()
    assert "s3cret" not in text and "session=abc" not in text and "io=1" not in text
    assert base64.b64encode(packed).decode() not in text
    items = list(CaptureReader(path))
    req = items[1]
    assert isinstance(req, HttpRequest)
    assert dict(req.headers)["Cookie"] == fingerprint("session=abc")
    token = fingerprint("s3cret")
    assert req.body == b'40{"token":"' + token.encode() + b'"}\x1e42["hello",1]'
    ws_text, ws_bin = items[-2], items[-1]
    assert isinstance(ws_text, WsMessage) and isinstance(ws_bin, WsMessage)
    assert json.loads(ws_text.payload.decode()[len("40/admin,"):]) == {
        "token": fingerprint("s3cret"), "n": fingerprint(1)}
    assert msgpack.unpackb(ws_bin.payload)["data"] == {"token": fingerprint("s3cret")}


def test_records_round_trip_with_bytes(tmp_path: Path) -> None:
    """Records are stored tagged and read back with bytes and extra fields intact."""
    path = tmp_path / "cap.jsonl"
    writer = CaptureWriter(path)
    rec = Record(event="sio.event", ts=T0, conn="c1", eio_sid="e1", dir="out", nsp="/",
                 name="bin", args=[b"\x00\x01", {"a": 1}], ack_id=3, size=9,
                 extra={"attachments": 1})
    writer(rec)
    writer.close()
    assert list(CaptureReader(path)) == [rec]


def test_sigkill_leaves_a_file_readable_to_the_last_complete_line(tmp_path: Path) -> None:
    """A writer process killed with SIGKILL mid-stream leaves every complete line readable."""
    path = tmp_path / "killed.jsonl"
    script = f"""
import sys
from sio_sniffer.capture import CaptureWriter
from sio_sniffer.model.tap import WsMessage
w = CaptureWriter({str(path)!r}, upstream="http://up")
i = 0
while True:
    w.tap(WsMessage(conn="c1", ts=float(i), dir="out", opcode=1,
                    payload=b'42["tick",' + str(i).encode() + b"]", wire_size=10))
    if i == 200:
        print("ready", flush=True)
    i += 1
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            cwd=ROOT)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == b"ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reader = CaptureReader(path)
    items = list(reader)
    assert len(items) > 200
    assert [it.ts for it in items] == [float(i) for i in range(len(items))]
    # At most the very last line can be cut by the kill.
    assert len(reader.problems) <= 1
    if reader.problems:
        lines = path.read_bytes().split(b"\n")
        assert reader.problems[0].line == len(items) + 2
        assert "truncated" in reader.problems[0].reason and lines[-1] != b""


def test_full_disk_is_reported_once_and_never_raises(tmp_path: Path) -> None:
    """Writing to a full disk (/dev/full) reports one problem, counts lost lines, never raises."""
    problems: list[str] = []
    writer = CaptureWriter("/dev/full", on_problem=problems.append, retry_after=3600)
    for ev in _all_events():
        writer.tap(ev)  # type: ignore[arg-type]
    writer(Record(event="x", ts=T0))
    writer.close()
    assert len(problems) == 1 and "No space left" in problems[0]
    assert writer.lines_written == 0 and writer.lines_lost == len(_all_events()) + 2


def test_unwritable_path_is_reported_once(tmp_path: Path) -> None:
    """A capture path in a missing directory is reported once and the writer stays usable."""
    problems: list[str] = []
    writer = CaptureWriter(tmp_path / "no" / "such" / "cap.jsonl", on_problem=problems.append)
    for ev in _all_events():
        writer.tap(ev)  # type: ignore[arg-type]
    assert len(problems) == 1 and "cannot open capture file" in problems[0]


def test_writer_resumes_after_the_failure_clears(tmp_path: Path) -> None:
    """After a failed open the writer retries later and reports how many lines were lost."""
    problems: list[str] = []
    now = [0.0]
    target = tmp_path / "later" / "cap.jsonl"
    writer = CaptureWriter(target, on_problem=problems.append, retry_after=5,
                           clock=lambda: now[0])
    events = _all_events()
    writer.tap(events[0])  # type: ignore[arg-type]
    target.parent.mkdir()
    now[0] = 10.0
    writer.tap(events[1])  # type: ignore[arg-type]
    writer.close()
    assert problems[-1] == "capture resumed after losing 1 line(s)"
    items = list(CaptureReader(target))
    assert len(items) == 1 and isinstance(items[0], HttpRequest)


def test_rotation_by_size_writes_segments_with_headers(tmp_path: Path) -> None:
    """Rotation starts a new segment with its own header; merged segments give back every line."""
    path = tmp_path / "cap.jsonl"
    writer = CaptureWriter(path, rotate_bytes=600)
    msgs = [WsMessage(conn="c1", ts=T0 + i, dir="out", opcode=1,
                      payload=f'42["n",{i}]'.encode(), wire_size=9) for i in range(30)]
    for m in msgs:
        writer.tap(m)
    writer.close()
    assert len(writer.paths) > 2
    for p in writer.paths:
        assert json.loads(p.read_text().splitlines()[0])["format"] == FORMAT
        assert p.stat().st_size <= 600
    merged = list(merge([CaptureReader(p) for p in writer.paths],
                        [capture_id_of(p) for p in writer.paths]))
    assert merged == msgs


def test_merge_orders_by_time_and_keeps_connections_apart(tmp_path: Path) -> None:
    """Two captures merge by time and their equal connection ids get distinct prefixes."""
    paths = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    for k, p in enumerate(paths):
        w = CaptureWriter(p)
        for i in range(3):
            w.tap(WsMessage(conn="c1", ts=T0 + 2 * i + k, dir="out", opcode=1, payload=b"4x",
                            wire_size=3))
        w.close()
    merged = list(merge([CaptureReader(p) for p in paths], [capture_id_of(p) for p in paths]))
    assert [m.ts for m in merged] == [T0 + i for i in range(6)]
    assert [m.conn for m in merged] == ["1/c1", "2/c1"] * 3  # type: ignore[union-attr]


def _good_file(tmp_path: Path) -> Path:
    path = tmp_path / "cap.jsonl"
    w = CaptureWriter(path, show_secrets=True)
    for ev in _all_events():
        w.tap(ev)  # type: ignore[arg-type]
    w.close()
    return path


def test_truncated_capture_names_the_line_and_keeps_the_rest(tmp_path: Path) -> None:
    """A capture cut mid-line reports that line number and yields every line before it."""
    path = _good_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 20])
    reader = CaptureReader(path)
    items = list(reader)
    assert len(items) == len(_all_events()) - 1
    assert len(reader.problems) == 1
    assert reader.problems[0].line == len(_all_events()) + 1
    assert str(reader.problems[0]).startswith(f"{path}:{len(_all_events()) + 1}: truncated")


def test_corrupt_and_hostile_lines_are_skipped_with_line_numbers(tmp_path: Path) -> None:
    """Garbage, wrong shapes, deep nesting and over-long lines are each named; the rest reads."""
    path = _good_file(tmp_path)
    lines = path.read_bytes().split(b"\n")
    bad = [
        b"this is not json",
        b"[1, 2, 3]",
        b'{"t": "ws_message", "conn": "c1"}',
        b'{"t": "martian", "ts": 1}',
        b'{"t": "ws_message", "conn": 5, "ts": 1, "dir": "in", "opcode": 1, "payload": "x",'
        b' "wire_size": 1}',
        b'{"t": "record", "ts": 1, "r": {"event": "x", "args": ' + b"[" * 5000 + b"]" * 5000
        + b"}}",
        b'{"t": "ws_message", "payload_b64": "' + b"A" * 5000 + b'"}',
    ]
    # Insert the bad lines after line 3 (header, conn_open, http_request).
    new = [*lines[:3], *bad, *lines[3:]]
    path.write_bytes(b"\n".join(new))
    reader = CaptureReader(path, max_line=4096)
    items = list(reader)
    assert items == _all_events()
    assert [p.line for p in reader.problems] == list(range(4, 4 + len(bad)))
    reasons = [p.reason for p in reader.problems]
    assert reasons[0].startswith("not JSON")
    assert "expected a JSON object" in reasons[1]
    assert "lacks" in reasons[2]
    assert "unknown line type 'martian'" in reasons[3]
    assert "conn has the wrong type" in reasons[4]
    assert "longer than 4096 bytes" in reasons[6]


def test_newer_version_and_foreign_files_are_refused(tmp_path: Path) -> None:
    """A capture from a newer format or a file that is not a capture gives a clear error."""
    newer = tmp_path / "newer.jsonl"
    newer.write_text(json.dumps({"format": FORMAT, "version": 99, "sniffer": "9.0"}) + "\n")
    with pytest.raises(CaptureError, match="version 99 was written by a newer sio-sniffer"):
        list(CaptureReader(newer))
    other = tmp_path / "other.txt"
    other.write_text("hello\n")
    with pytest.raises(CaptureError, match=r"other.txt:1: not a sio-sniffer capture"):
        list(CaptureReader(other))


def test_older_version_is_migrated_line_by_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration hook turns each line of an older version into the current form."""
    from sio_sniffer import capture

    # Pretend the current format is 2 and version 1 named the message payload "data".
    monkeypatch.setattr(capture.format, "VERSION", 2)
    path = tmp_path / "old.jsonl"
    path.write_text(
        json.dumps({"format": FORMAT, "version": 1, "sniffer": "0.0"}) + "\n"
        + json.dumps({"t": "ws_message", "conn": "c1", "ts": 1.0, "dir": "out", "opcode": 1,
                      "data": "42[1]", "wire_size": 7}) + "\n")

    def v1_to_v2(line: dict[str, object]) -> dict[str, object]:
        if "data" in line:
            line = {**line, "payload": line.pop("data")}
        return line

    with pytest.raises(CaptureError, match="no migration from capture version 1"):
        list(CaptureReader(path, migrations={}))
    items = list(CaptureReader(path, migrations={1: v1_to_v2}))
    assert items == [WsMessage(conn="c1", ts=1.0, dir="out", opcode=1, payload=b"42[1]",
                               wire_size=7)]
