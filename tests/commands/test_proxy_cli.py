"""`sio-sniffer proxy` as a user runs it: a child process, signals, exit codes, the log file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from sio_sniffer.bench import process_tree
from tests.conftest import free_port
from tests.rigs import log_lines, start_proxy, stop_proxy, until


async def test_upstream_down_gives_502_and_says_so(tmp_path: Path) -> None:
    """With nothing on the upstream port the client gets a 502 with a one-line reason and the
    log says the upstream refused the connection."""
    dead = free_port()
    port = free_port()
    log = tmp_path / "log.jsonl"
    proc = await start_proxy("--listen", f"127.0.0.1:{port}",
                              "--upstream", f"http://127.0.0.1:{dead}", "--log", str(log))
    try:
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{port}/socket.io/?EIO=4&transport=polling") as resp:
            body = await resp.text()
        assert resp.status == 502
        assert body.count("\n") <= 1 and f"127.0.0.1:{dead}" in body
        assert body.startswith("sio-sniffer: ")  # the sniffer's own answer, not the server's
    finally:
        assert await stop_proxy(proc) == 0
    errors = [r for r in log_lines(log) if r["event"] == "upstream_error"]
    assert errors and errors[0]["reason"] == \
        f"upstream refused connection at http://127.0.0.1:{dead}: is the server running?"
    assert log_lines(log)[-1]["event"] == "summary"


async def test_port_in_use_exits_2_with_the_fix() -> None:
    """A taken listen port is one sentence with the fix and exit code 2."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sio_sniffer", "proxy", "--listen", f"127.0.0.1:{port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    text = err.decode()
    assert str(port) in text and "in use" in text
    assert "claude-mpm monitor start --port 8766" in text


def _uses_uvloop(pid: int) -> bool:
    with open(f"/proc/{pid}/maps", encoding="utf-8", errors="replace") as maps:
        return "uvloop" in maps.read()


@pytest.mark.parametrize("mode", [[], ["--single-process"], ["--loop", "asyncio"]],
                         ids=["two-process", "single-process", "asyncio-loop"])
async def test_proxy_command_logs_a_real_session(tmp_path: Path, py_server_factory: Any,
                                                 mode: list[str]) -> None:
    """The command (observer in its own process, or in the relay's; on uvloop unless asked for
    asyncio) relays a real client session and writes the JSON log and a capture file; SIGUSR1
    adds the inferred rooms; SIGTERM ends both files with the analysis summary."""
    server = await py_server_factory()
    got: asyncio.Queue[Any] = asyncio.Queue()

    def setup_echo() -> None:
        @server.sio.on("ping_me")
        async def ping_me(sid: str, data: Any) -> None:
            await server.sio.emit("pong_you", data, to=sid)

    setup_echo()
    port = free_port()
    log = tmp_path / "log.jsonl"
    capture = tmp_path / "cap.jsonl"
    proc = await start_proxy("--listen", f"127.0.0.1:{port}", "--upstream", server.url,
                              "--log", str(log), "--capture", str(capture), *mode)
    processes = process_tree(proc.pid)
    assert len(processes) == (1 if "--single-process" in mode else 2)
    assert all(_uses_uvloop(pid) == ("asyncio" not in mode) for pid in processes)
    try:
        client = socketio.AsyncClient(reconnection=False)
        client.on("pong_you", got.put)
        await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
        await client.emit("ping_me", {"n": 1})
        assert await asyncio.wait_for(got.get(), 10) == {"n": 1}
        await client.disconnect()
        proc.send_signal(signal.SIGUSR1)
        await until(lambda: log.exists() and '"event":"rooms"' in log.read_text())
        assert proc.stderr is not None  # the rooms reach the terminal too
        said = await asyncio.wait_for(proc.stderr.readline(), 10)
        assert b"inferred room(s)" in said, said
    finally:
        assert await stop_proxy(proc) == 0
    lines = log_lines(log)
    kinds = [r["event"] for r in lines]
    assert "eio.open" in kinds and "sio.connect_ok" in kinds
    assert any(r["event"] == "sio.event" and r["name"] == "pong_you" and r["dir"] == "out"
               for r in lines)
    assert kinds[-2:] == ["rooms", "summary"] and kinds.count("rooms") == 2
    header = json.loads(capture.read_text().splitlines()[0])
    assert header["upstream"] == server.url


async def test_observer_behind_past_its_buffer_drops_copies_not_traffic(
        tmp_path: Path, py_server_factory: Any) -> None:
    """With the observer process frozen (SIGSTOP), the relay holds copies up to
    --observer-buffer and then drops them: the client still gets every answer, the log flags the
    connection that lost copies, and the command says how much went unanalysed."""
    server = await py_server_factory()

    @server.sio.on("ping_me")
    async def ping_me(sid: str, data: Any) -> None:
        await server.sio.emit("pong_you", data, to=sid)

    port = free_port()
    log = tmp_path / "log.jsonl"
    proc = await start_proxy("--listen", f"127.0.0.1:{port}", "--upstream", server.url,
                              "--log", str(log), "--observer-buffer", "1")
    (observer,) = [pid for pid in process_tree(proc.pid) if pid != proc.pid]
    got: asyncio.Queue[Any] = asyncio.Queue()
    client = socketio.AsyncClient(reconnection=False)
    client.on("pong_you", got.put)
    frozen = False
    try:
        await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
        os.kill(observer, signal.SIGSTOP)
        frozen = True
        big = "x" * 300_000
        for n in range(8):  # 2.4 MB each way, past the 1 MiB buffer
            await client.emit("ping_me", {"n": n, "pad": big})
            assert (await asyncio.wait_for(got.get(), 10))["n"] == n
        os.kill(observer, signal.SIGCONT)
        frozen = False
        await client.disconnect()
    finally:
        if frozen:
            os.kill(observer, signal.SIGCONT)
        assert await stop_proxy(proc) == 0
    assert proc.stderr is not None
    said = (await proc.stderr.read()).decode()
    assert "the observer process fell behind:" in said and "--observer-buffer" in said
    gaps = [r for r in log_lines(log) if r["event"] == "decode_error"
            and "fell behind" in r.get("reason", "")]
    assert gaps and "forwarding was not affected" in gaps[0]["reason"]


@pytest.mark.parametrize("mode", [[], ["--single-process"]], ids=["two-process", "single-process"])
async def test_unwritable_log_is_one_sentence_and_exit_2(tmp_path: Path, mode: list[str]) -> None:
    """A log file that cannot be opened stops the command before it listens, with one line
    naming the file and why (in two-process mode the observer process says it)."""
    missing = tmp_path / "no-such-dir" / "log.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "proxy", "--listen", f"127.0.0.1:{free_port()}",
        "--log", str(missing), *mode,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        f"sio-sniffer: cannot open the log file {missing}: No such file or directory"]
