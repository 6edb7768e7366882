"""The peers of the cluster tests: a real redis-server on its own loopback port, python-socketio
nodes sharing it through ``AsyncRedisManager`` (the Node ones are ``cluster_server.js``), two
sniffers with --cluster in front of two nodes, and the one traffic they are all judged on."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import socketio
from aiohttp import web

from sio_sniffer.cluster import ClusterConfig
from sio_sniffer.model import flags as F
from sio_sniffer.pipeline.sniffer import Sniffer
from sio_sniffer.testing import Recorder, free_port
from tests.conftest import PyServer
from tests.rigs import generic, judging

TIMEOUT = 10.0
ROOM = "dashboards"  # what the nodes broadcast to: the dashboards join it, the chatter does not
NOBODY = "nobody"  # a room no client joins


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

    async def listeners(self) -> int:
        """Clients subscribed to a channel or a pattern: the adapters and the sniffers."""
        client = aioredis.Redis.from_url(self.url)
        try:
            return sum(1 for c in await client.client_list()
                       if int(c.get("sub", 0)) or int(c.get("psub", 0)))
        finally:
            await client.aclose()

    async def xreaders(self) -> int:
        """Clients blocked in (or last running) XREAD: a streams adapter's readers."""
        client = aioredis.Redis.from_url(self.url)
        try:
            return sum(1 for c in await client.client_list() if c.get("cmd") == "xread")
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

    def __init__(self, url: str, drop_every: int = 0, sticky: str | None = None,
                 misroute: bool = False) -> None:
        self.sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=1, ping_timeout=1,
                                        client_manager=socketio.AsyncRedisManager(url))
        self.app = web.Application()
        self.sio.attach(self.app)
        self.server = PyServer(self.sio, self.app)
        self.drop_every = drop_every
        # misroute: a dropped event is emitted to a room nobody joined instead of skipped.
        self.misroute = misroute
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

    def _room(self, kind: str, body: Any) -> str | None:
        """Where this event goes: the dashboards' room, or (dropped) nowhere or a room nobody
        joined."""
        self.seen[kind] += 1
        if self.drop_every and self.seen[kind] % self.drop_every == 0:
            self.dropped.append(body)
            return NOBODY if self.misroute else None
        return ROOM

    async def _ingest(self, request: web.Request) -> web.Response:
        body = await request.json()
        room = self._room("hook", body)
        if room is not None:
            await self.sio.emit("claude_event", body, room=room)
        response = web.json_response({"ok": True})
        if self.sticky:
            response.set_cookie(self.sticky, "node-a")
        return response

    async def _chat(self, sid: str, data: Any) -> None:
        room = self._room("chat", data)
        if room is not None:
            await self.sio.emit("chat", data, room=room, skip_sid=sid)


@contextlib.asynccontextmanager
async def nodes(url: str, *drops: int, sticky: str | None = None,
                misroute: bool = False) -> AsyncIterator[list[Node]]:
    started = [Node(url, d, sticky, misroute) for d in drops]
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
        # The arguments after the first (a recovery offset, with connectionStateRecovery).
        self.rest: list[tuple[Any, ...]] = []
        self.client.on("*", self._any)

    async def _any(self, name: str, data: Any = None, *rest: Any) -> None:
        self.got.append((name, data))
        self.rest.append(rest)

    async def connect(self, url: str, join: bool = True) -> Dashboard:
        await self.client.connect(url, transports=["websocket"], wait_timeout=5)
        if join:
            assert await self.client.call("join", timeout=5)
        return self


EVENTS = 9  # hook POSTs, and as many chat events, per run
DEADLINE = 1.0


@dataclass
class Run:
    """What one driven cluster run left: each sniffer's records and the dashboards."""

    rec_a: Recorder
    rec_b: Recorder
    dashboards: list[Dashboard]


@contextlib.asynccontextmanager
async def sniffed(redis: RedisServer, upstream_a: str, upstream_b: str) -> AsyncIterator[
        tuple[tuple[Sniffer, Recorder], tuple[Sniffer, Recorder]]]:
    """A sniffer with --cluster in front of each node, both views on, each heard by the other."""
    async with judging(upstream_a, generic(DEADLINE),
                       cluster=ClusterConfig(redis.url, "A")) as sniffer_a, \
            judging(upstream_b, generic(DEADLINE),
                    cluster=ClusterConfig(redis.url, "B")) as sniffer_b:
        for _, rec in (sniffer_a, sniffer_b):
            await rec.wait("cluster.state", state="on")
        # Each has heard the other: a loss names who was where.
        for (sniffer, _), peer in ((sniffer_a, "B"), (sniffer_b, "A")):
            heard = sniffer.analyzer.relay.cluster.nodes
            await until(lambda n=heard, p=peer: p in n)
        yield sniffer_a, sniffer_b


async def drive(redis: RedisServer, upstreams: tuple[str, str], where: str, dropped: int,
                listeners: int, shards: tuple[str, ...] = (), xreaders: int = 0,
                before_events: Callable[[], Awaitable[None]] | None = None) -> Run:
    """Hooks and a chatting client on node A, dashboards ``where`` ("B": both on node B,
    "AB": one on each, "A": both on node A); ``dropped`` of each kind are expected to be
    skipped by node A, and ``listeners`` Redis subscribers (adapters and sniffers) to be there
    before anything is sent, and both sniffers to read the shard channels ``shards`` (a sharded
    adapter), and ``xreaders`` clients to block in XREAD (a streams adapter's nodes) while both
    sniffers have looked for its stream; ``before_events`` is awaited then, before anything is
    sent. Returns once node A's sniffer has judged every
    event."""
    async with sniffed(redis, *upstreams) as ((sa, rec_a), (sb, rec_b)):
        urls = {"A": sa.url, "B": sb.url}
        dashboards = [await Dashboard().connect(urls[n]) for n in (where * 2)[:2]]
        chatter = await Dashboard().connect(sa.url, join=False)
        await until(lambda: at_least(redis.listeners(), listeners))
        for sniffer in (sa, sb):
            link = sniffer.observer.cluster
            await until(lambda link=link: set(shards) <= link.shard_channels)
            if xreaders:
                await until(lambda link=link: all(
                    s in link.streams_absent or s in link.stream_offsets
                    for s in link.config.streams))
        if xreaders:
            await until(lambda: at_least(redis.xreaders(), xreaders))
        if before_events is not None:
            await before_events()
        async with aiohttp.ClientSession() as http:
            for i in range(EVENTS):
                async with http.post(f"{sa.url}/api/events",
                                     json={"hook": "pre_tool", "session_id": f"sess-{i}"}) as r:
                    assert r.status == 200
                await chatter.client.emit("chat", {"text": f"message number {i}"})
        await until(lambda: all(len(d.got) >= 2 * (EVENTS - dropped) for d in dashboards))
        analyzer = sa.analyzer
        # Judged: matched, or past the deadline (each drop a flag).
        await until(lambda: analyzer.correlator.waiting() == 0 and
                    analyzer.relay.matched + analyzer.flag.counts.get(F.LOST, 0) >= 2 * EVENTS)
        for client in (*dashboards, chatter):
            await client.client.disconnect()
    return Run(rec_a, rec_b, dashboards)


async def at_least(count: Any, n: int) -> bool:
    """Whether the awaited ``count`` is ``n`` or more (for :func:`until`)."""
    return bool(await count >= n)


def check_nothing_lost(run: Run) -> dict[str, Any]:
    """Every event reached every dashboard, nothing is lost, node A's sniffer matched them all
    and saw them emitted on the adapter; its summary's cluster view."""
    assert all(len(d.got) == 2 * EVENTS for d in run.dashboards)
    assert run.rec_a.flags(F.LOST) == [] and run.rec_b.flags(F.LOST) == []
    summary = run.rec_a.of("summary")[-1]
    assert summary.get("expectations")["matched"] == 2 * EVENTS
    view: dict[str, Any] = summary.get("cluster")
    assert view["adapter_emits"] >= 2 * EVENTS
    return view


def check_healthy(run: Run, where: str) -> None:
    """As :func:`check_nothing_lost`, and node A's sniffer closed the events through node B's
    exactly when no dashboard was on A."""
    view = check_nothing_lost(run)
    assert view["delivered_elsewhere"] == ({"B": 2 * EVENTS} if where == "B" else {})
    assert view["nodes"].get("B") is not None


def check_drops(run: Run, where: str) -> None:
    """Each of the three hook POSTs and three chats node A skipped is flagged once, by node A's
    sniffer, with the cause the dashboards' place allows."""
    assert run.rec_b.flags(F.LOST) == []
    lost = run.rec_a.flags(F.LOST)
    assert sorted(str(f.get("path") or f.name) for f in lost) == ["/api/events"] * 3 + \
        ["chat"] * 3
    if where == "B":
        # Nobody on A could have received them: the cluster view says which node failed.
        assert {f.get("code") for f in lost} == {F.LOST_NODE_NOT_EMITTED}
        for flag in lost:
            assert "node A never emitted it" in flag.get("cause")
            assert "node B had 2 client(s) on /" in flag.get("cause")
    else:
        # A dashboard here got the others: this node's server skipped these.
        assert {f.get("code") for f in lost} == {F.LOST_NOT_EMITTED}
