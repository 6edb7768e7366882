"""The peers of the cluster tests: a real redis-server on its own loopback port, python-socketio
nodes sharing it through ``AsyncRedisManager``, and a wait for the adapter's subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import redis.asyncio as aioredis
import socketio
from aiohttp import web

from sio_sniffer.testing import free_port
from tests.conftest import PyServer

TIMEOUT = 10.0
ROOM = "dashboards"  # what the nodes broadcast to: the dashboards join it, the chatter does not


class RedisServer:
    """``redis-server`` on 127.0.0.1, no persistence; stop() and start() again on the same
    port (the restart test)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await until(self.answers)

    async def answers(self) -> bool:
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        try:
            return bool(await client.ping())
        except (OSError, aioredis.ConnectionError):
            return False
        finally:
            await client.aclose()

    async def subscribers(self, channel: str) -> int:
        client = aioredis.Redis.from_url(self.url)
        try:
            counts = await client.pubsub_numsub(channel)
            return int(counts[0][1]) if counts else 0
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(5)
            self.process = None


async def until(check: Callable[[], Any], timeout: float = TIMEOUT) -> None:
    """Poll ``check`` (sync or async) every 20 ms until it is true."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{check} stayed false for {timeout} s")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def redis_server() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    try:
        yield server
    finally:
        server.stop()


class Node:
    """A python-socketio node of the cluster: POST /api/events and client ``chat`` events are
    broadcast through the Redis manager; with ``drop_every``, every n-th of each is skipped
    (the node's handler drops it), counted in ``dropped``."""

    def __init__(self, url: str, drop_every: int = 0, sticky: str | None = None) -> None:
        self.sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=1, ping_timeout=1,
                                        client_manager=socketio.AsyncRedisManager(url))
        self.app = web.Application()
        self.sio.attach(self.app)
        self.server = PyServer(self.sio, self.app)
        self.drop_every = drop_every
        # The cookie a load balancer in front of the node would add to its answers.
        self.sticky = sticky
        self.seen = {"hook": 0, "chat": 0}
        self.dropped: list[Any] = []
        self.app.router.add_post("/api/events", self._ingest)
        self.sio.on("chat", self._chat)
        self.sio.on("join", self._join)

    async def _join(self, sid: str, _: Any = None) -> bool:
        await self.sio.enter_room(sid, ROOM)
        return True

    def _drops(self, kind: str, body: Any) -> bool:
        self.seen[kind] += 1
        if self.drop_every and self.seen[kind] % self.drop_every == 0:
            self.dropped.append(body)
            return True
        return False

    async def _ingest(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not self._drops("hook", body):
            await self.sio.emit("claude_event", body, room=ROOM)
        response = web.json_response({"ok": True})
        if self.sticky:
            response.set_cookie(self.sticky, "node-a")
        return response

    async def _chat(self, sid: str, data: Any) -> None:
        if not self._drops("chat", data):
            await self.sio.emit("chat", data, room=ROOM, skip_sid=sid)


@contextlib.asynccontextmanager
async def nodes(url: str, *drops: int, sticky: str | None = None) -> AsyncIterator[list[Node]]:
    started = [Node(url, d, sticky) for d in drops]
    for node in started:
        await node.server.start()
    try:
        yield started
    finally:
        for node in started:
            await node.sio.shutdown()
            await node.server.stop()
            # The manager's listener retries for ever: only cancelling it ends it.
            listener = getattr(node.sio.manager, "thread", None)
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            if node.sio.manager.redis is not None:  # None: this node never used Redis
                await node.sio.manager.redis.aclose()


class Dashboard:
    """A socketio.AsyncClient collecting every event it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.got: list[tuple[str, Any]] = []
        self.client.on("*", self._any)

    async def _any(self, name: str, data: Any) -> None:
        self.got.append((name, data))

    async def connect(self, url: str, join: bool = True) -> Dashboard:
        await self.client.connect(url, transports=["websocket"], wait_timeout=5)
        if join:
            assert await self.client.call("join", timeout=5)
        return self
