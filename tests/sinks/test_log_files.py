"""``--log FILE`` as files on a real disk: reopened on SIGHUP (logrotate), rotated by size with
``--log-rotate``, and a full disk that costs log lines, never traffic."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import socketio

from sio_sniffer import model
from sio_sniffer.model import Record
from sio_sniffer.sinks.jsonlog import JsonLogSink, LogFile
from sio_sniffer.testing import free_port
from tests.rigs import log_lines, start_proxy, stop_proxy, until

MODES = {"two-process": [], "single-process": ["--single-process"]}


def _relaying(sio: socketio.AsyncServer, _app: Any) -> None:
    @sio.on("tell")
    async def tell(sid: str, data: Any) -> None:
        await sio.emit("told", data, to=sid)


def _told(path: Path) -> list[int]:
    """The ``n`` of every "told" event the log holds (the server's relay of a "tell")."""
    return [r["args"][0]["n"] for r in log_lines(path)
            if r["event"] == model.SIO_EVENT and r.get("name") == "told"]


class _Client:
    """A python-socketio client through the proxy that counts the "told" events it receives."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.got: list[int] = []
        self.sio.on("told", lambda data: self.got.append(data["n"]))

    async def tell(self, numbers: range, pad: str = "") -> None:
        for n in numbers:
            await self.sio.emit("tell", {"n": n, "pad": pad})
        await until(lambda: len(self.got) >= numbers.stop)


def _private(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", list(MODES))
async def test_sighup_reopens_the_log(tmp_path: Path, py_server_factory: Any, mode: str) -> None:
    """logrotate's way: the log is moved away and SIGHUP sent; what follows goes to a new file at
    the old path (0600) and every event is in exactly one of the two; neither process dies."""
    server = await py_server_factory(_relaying)
    log, moved = tmp_path / "log.jsonl", tmp_path / "log.jsonl.1"
    port = free_port()
    proc = await start_proxy("--listen", f"127.0.0.1:{port}", "--upstream", server.url,
                             "--log", str(log), *MODES[mode])
    client = _Client()
    try:
        await client.sio.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
        await client.tell(range(0, 20))
        await until(lambda: len(_told(log)) == 20)
        log.rename(moved)
        proc.send_signal(signal.SIGHUP)
        await until(log.exists)  # reopened: what comes next belongs to the new file
        await client.tell(range(20, 50))
        await until(lambda: len(_told(log)) == 30)
        await client.sio.disconnect()
    finally:
        assert await stop_proxy(proc) == 0
    assert sorted(_told(moved)) == list(range(0, 20))
    assert sorted(_told(log)) == list(range(20, 50))
    assert log_lines(log)[-1]["event"] == model.SUMMARY
    assert _private(log)


@pytest.mark.parametrize("mode", list(MODES))
async def test_sighup_without_a_log_file_stops_cleanly(mode: str) -> None:
    """Logging to standard output there is nothing to reopen: SIGHUP is the terminal hanging up,
    and the proxy stops as on SIGTERM, its log ending with the summary."""
    proc = await start_proxy("--listen", f"127.0.0.1:{free_port()}", *MODES[mode])
    proc.send_signal(signal.SIGHUP)
    assert await asyncio.wait_for(proc.wait(), 20) == 0
    assert proc.stdout is not None
    lines = (await proc.stdout.read()).splitlines()
    assert json.loads(lines[-1])["event"] == model.SUMMARY


async def test_log_rotate_numbers_the_files(tmp_path: Path, py_server_factory: Any) -> None:
    """--log-rotate: LOG, LOG.1, LOG.2, ... each at most the size (or one line), every line whole
    JSON, every event once, every file 0600."""
    server = await py_server_factory(_relaying)
    log = tmp_path / "log.jsonl"
    limit = 4000
    port = free_port()
    proc = await start_proxy("--listen", f"127.0.0.1:{port}", "--upstream", server.url,
                             "--log", str(log), "--log-rotate", str(limit))
    client = _Client()
    try:
        await client.sio.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
        await client.tell(range(0, 200), pad="p" * 100)
        await client.sio.disconnect()
    finally:
        assert await stop_proxy(proc) == 0
    files = sorted(tmp_path.iterdir(), key=lambda p: int(p.suffix[1:]) if p.name != log.name
                   else 0)
    assert files[0] == log and len(files) > 5
    assert [p.name for p in files] == [log.name] + [f"{log.name}.{n}" for n in
                                                    range(1, len(files))]
    told: list[int] = []
    for path in files:
        text = path.read_bytes()
        assert text.endswith(b"\n")
        lines = text.splitlines()
        assert len(text) <= limit or len(lines) == 1, path
        for line in lines:
            json.loads(line)
        told += _told(path)
        assert _private(path)
    assert sorted(told) == list(range(200))
    assert log_lines(files[-1])[-1]["event"] == model.SUMMARY


async def test_full_disk_costs_log_lines_not_traffic(py_server_factory: Any) -> None:
    """--log /dev/full: the client still gets every event back, and stderr says so once."""
    server = await py_server_factory(_relaying)
    port = free_port()
    proc = await start_proxy("--listen", f"127.0.0.1:{port}", "--upstream", server.url,
                             "--log", "/dev/full")
    client = _Client()
    try:
        await client.sio.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
        await client.tell(range(0, 30))
        await client.sio.disconnect()
    finally:
        assert await stop_proxy(proc) == 0
    assert proc.stderr is not None
    stderr = (await proc.stderr.read()).decode()
    assert sorted(client.got) == list(range(30))
    assert "Traceback" not in stderr
    report = "cannot write the log /dev/full: No space left on device"
    assert stderr.count(report) == 1, stderr
    assert "free space on its disk or point --log at another one" in stderr
    assert "writing the log" not in stderr, stderr  # /dev/full never recovers


class _FlakyDisk:
    """A file whose writes fail with ENOSPC ``failures`` times, then work."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.data = b""

    def write(self, data: bytes) -> int:
        if self.failures:
            self.failures -= 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.data += data
        return len(data)

    def flush(self) -> None:
        pass


def _event(n: int) -> Record:
    return Record(model.SIO_EVENT, 1_700_000_000.0 + n, conn="c1", nsp="/", name="told",
                  dir="out", args=[{"n": n}])


def test_a_disk_that_fills_then_frees() -> None:
    """Three failed flushes of two lines each: one report, one resume line with the count (6),
    no exception, and the lines after are written whole."""
    disk = _FlakyDisk(failures=3)
    said: list[str] = []
    sink = JsonLogSink(disk, on_problem=said.append)  # type: ignore[arg-type]
    for flush in range(5):
        sink(_event(2 * flush))
        sink(_event(2 * flush + 1))
        sink.flush()
    assert len(said) == 2, said
    assert said[0] == ("cannot write the log: No space left on device; traffic keeps flowing and "
                       "log lines are dropped until writing works again: free space on its disk "
                       "or point --log at another one")
    assert said[1] == "writing the log again; 6 line(s) were dropped while it could not be written"
    assert [json.loads(line)["args"][0]["n"] for line in disk.data.splitlines()] == [6, 7, 8, 9]
    assert sink.dropped == 6


def test_rotation_never_splits_a_line(tmp_path: Path) -> None:
    """One batch bigger than several parts: cut at line ends only; a line longer than the size
    has a part to itself."""
    path = tmp_path / "log"
    log = LogFile(path, rotate_bytes=100)
    lines = [b"a" * 40, b"b\rb" * 13, b"c" * 250, b"d" * 10, b"e" * 95]
    log.write(b"".join(line + b"\n" for line in lines))
    log.close()
    assert [p.read_bytes().split(b"\n")[:-1] for p in log.paths] == [
        [b"a" * 40, b"b\rb" * 13], [b"c" * 250], [b"d" * 10], [b"e" * 95]]
    assert log.paths == [path, *(tmp_path / f"log.{n}" for n in (1, 2, 3))]


def test_reopen_where_the_file_cannot_be_made(tmp_path: Path) -> None:
    """SIGHUP after the log's folder went away: reported once, then written again when the
    folder is back, with the count."""
    folder = tmp_path / "logs"
    folder.mkdir()
    said: list[str] = []
    sink = JsonLogSink(LogFile(folder / "log"), on_problem=said.append)
    sink(_event(0))
    (folder / "log").rename(tmp_path / "old")
    folder.rmdir()
    sink.reopen()
    sink(_event(1))
    sink.flush()
    folder.mkdir()
    sink(_event(2))
    sink.flush()
    assert len(said) == 2 and said[0].startswith(f"cannot write the log {folder / 'log'}: "), said
    assert said[1].endswith("1 line(s) were dropped while it could not be written")
    assert [json.loads(line)["args"][0]["n"] for line in
            (folder / "log").read_bytes().splitlines()] == [2]
    assert [json.loads(line)["args"][0]["n"] for line in
            (tmp_path / "old").read_bytes().splitlines()] == [0]


async def test_log_rotate_needs_a_log_file() -> None:
    """--log-rotate without --log FILE: one sentence naming the fix, exit code 2."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "proxy", "--listen", f"127.0.0.1:{free_port()}",
        "--log-rotate", "1000", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert err.decode() == "sio-sniffer: --log-rotate needs --log FILE (standard output is not " \
        "rotated)\n"
