"""`sio-sniffer proxy --cluster` as a user runs it: a bad URL is one sentence and exit 2; with no
Redis yet the proxy relays as ever and says once that the cluster view is off, and once that it
is back when Redis starts."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import socketio

from sio_sniffer.testing import free_port
from tests.cluster.cluster_peers import RedisServer


async def test_a_bad_cluster_url_is_one_sentence_and_exit_2() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "proxy", "--listen", f"127.0.0.1:{free_port()}",
        "--cluster", "localhost:6379", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert err.decode().strip().splitlines() == [
        "sio-sniffer: --cluster wants the Redis the app's adapter uses, as "
        "redis://HOST:PORT[/DB] (such as redis://127.0.0.1:6379/0), not 'localhost:6379'"]


@pytest.mark.parametrize("given", ["flags", "profile"])
async def test_no_redis_yet_relays_as_ever_and_says_so_once(
        py_server_factory: Any, tmp_path: Path, given: str) -> None:
    """Named on the command line or in the profile's [cluster] table alike."""
    server = await py_server_factory()

    @server.sio.on("ping_me")
    async def ping_me(sid: str, data: Any) -> None:
        await server.sio.emit("pong_you", data, to=sid)

    redis = RedisServer()  # its port, not started yet
    port = free_port()
    if given == "flags":
        cluster = ["--cluster", redis.url, "--cluster-node", "A"]
    else:
        profile = tmp_path / "app.toml"
        profile.write_text(f'name = "app"\n[cluster]\nredis = "{redis.url}"\nnode = "A"\n'
                           f'channels = ["socketio"]\n')
        cluster = ["--profile", str(profile)]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "proxy", "--listen", f"127.0.0.1:{port}",
        "--upstream", server.url, *cluster, "--log", "/dev/null",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    stderr = proc.stderr
    assert stderr is not None
    said: list[str] = []

    async def line_with(text: str) -> str:
        while True:
            line = (await asyncio.wait_for(stderr.readline(), 20)).decode()
            said.append(line)
            if text in line:
                return line

    try:
        await line_with("listening on")
        off = await line_with("cluster view is off")
        assert redis.url in off and "traffic is unaffected" in off and "start Redis" in off
        assert "node A judges alone" in off
        got: asyncio.Queue[Any] = asyncio.Queue()
        client = socketio.AsyncClient(reconnection=False)
        client.on("pong_you", got.put)
        await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"])
        await client.emit("ping_me", {"n": 1})
        assert await asyncio.wait_for(got.get(), 10) == {"n": 1}
        await client.disconnect()
        await redis.start()
        await line_with("cluster view is back")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(proc.communicate(), 20)
        redis.stop()
    said.append(rest.decode())
    assert proc.returncode == 0
    assert "".join(said).count("cluster view is off") == 1
