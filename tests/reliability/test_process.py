"""`sio-sniffer proxy` as a process: stopped by signals, killed, or given a log it cannot write."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import socketio

from sio_sniffer.capture import CaptureReader
from tests.conftest import free_port
from tests.reliability.rel_peers import node


class ProxyProcess:
    def __init__(self, proc: asyncio.subprocess.Process, url: str, early: str) -> None:
        self.proc = proc
        self.url = url
        self.early = early  # stderr up to the "listening" line

    async def stop(self, sig: int) -> tuple[int, str]:
        """Send ``sig``; the exit code and the rest of stderr."""
        assert self.proc.stderr is not None
        self.proc.send_signal(sig)
        rest = await asyncio.wait_for(self.proc.stderr.read(), 20)
        return await asyncio.wait_for(self.proc.wait(), 20), self.early + rest.decode()


@asynccontextmanager
async def proxy(upstream: str, *args: str) -> AsyncIterator[ProxyProcess]:
    """``python -m sio_sniffer proxy`` on a free port; killed by pid if the test did not stop it."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "proxy", "--listen", f"127.0.0.1:{port}",
        "--upstream", upstream, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        early = b""
        while b"listening on" not in early:
            line = await asyncio.wait_for(proc.stderr.readline(), 20)
            assert line, early
            early += line
        yield ProxyProcess(proc, f"http://127.0.0.1:{port}", early.decode())
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def _connected(url: str) -> tuple[socketio.AsyncClient, asyncio.Event]:
    client = socketio.AsyncClient(reconnection=False)
    gone = asyncio.Event()
    client.on("disconnect", lambda *reason: gone.set())
    await client.connect(url, transports=["websocket"], auth={"token": "t0ken-A"},
                         wait_timeout=10)
    assert await client.call("echo", "before stop", timeout=10) == "before stop"
    return client, gone


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_stop_signal_closes_cleanly(sig: int, tmp_path: Path) -> None:
    """SIGINT/SIGTERM: the connected client is disconnected at once, the process exits 0, and
    both the log and the capture end with the summary record."""
    log, capture = tmp_path / "log.jsonl", tmp_path / "cap.jsonl"
    async with node() as (url, _node), \
            proxy(url, "--log", str(log), "--capture", str(capture)) as sniffer:
        client, gone = await _connected(sniffer.url)
        code, stderr = await sniffer.stop(sig)
        await asyncio.wait_for(gone.wait(), 5)
        await client.disconnect()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    records = _lines(log)
    assert records[-1]["event"] == "summary"
    assert any(r["event"] == "conn.close" and r["by"] == "proxy" for r in records)
    reader = CaptureReader(capture)
    items = list(reader)
    assert not reader.problems
    assert getattr(items[-1], "event", None) == "summary"


async def test_sigkill_leaves_a_readable_capture(tmp_path: Path) -> None:
    """SIGKILL mid-session: the capture reads to its last line without a single bad line, and
    holds the session up to the kill."""
    capture = tmp_path / "cap.jsonl"
    async with node() as (url, _node), proxy(url, "--capture", str(capture)) as sniffer:
        client, gone = await _connected(sniffer.url)
        sniffer.proc.kill()
        await sniffer.proc.wait()
        await asyncio.wait_for(gone.wait(), 5)
        await client.disconnect()
    reader = CaptureReader(capture)
    items = list(reader)
    assert not reader.problems
    names = [getattr(i, "name", None) for i in items]
    assert "echo" in names


async def test_log_on_a_full_disk(tmp_path: Path) -> None:
    """--log /dev/full and --capture /dev/full: traffic keeps flowing and each problem is
    reported once on stderr; the process still exits 0."""
    async with node() as (url, _node), \
            proxy(url, "--log", "/dev/full", "--capture", "/dev/full") as sniffer:
        for _ in range(3):
            client, _gone = await _connected(sniffer.url)
            big = "x" * 100_000  # more than the log's buffer: the writes really happen
            assert await client.call("echo", big, timeout=10) == big
            await client.disconnect()
        code, stderr = await sniffer.stop(signal.SIGTERM)
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert stderr.count("cannot write the log") == 1, stderr
    assert stderr.count("capture write to /dev/full failed") == 1, stderr


async def test_log_path_that_cannot_be_opened(tmp_path: Path) -> None:
    """A --log in a directory that does not exist is one clear line and exit code 2."""
    missing = tmp_path / "no" / "such" / "dir" / "log.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "proxy", "--listen", f"127.0.0.1:{free_port()}",
        "--log", str(missing), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    text = err.decode()
    assert proc.returncode == 2, text
    assert "Traceback" not in text and str(missing) in text
