"""Peers for the Admin UI bridge tests: a real python-socketio server with two namespaces, the
Sniffer in front of it feeding an AdminUIBridge, clients, and an /admin client that keeps
everything the bridge sent."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

from sio_sniffer.analysis import AnalysisConfig
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from sio_sniffer.web.adminui import AdminUIBridge
from tests.paths import NODE_MODULES

TOKEN = "s3cret-admin-ui-token"
USER = "admin"
PASSWORD = "pa55-w0rd"
NODE_CLIENT = Path(__file__).resolve().parent / "node_client.js"


def setup_upstream(sio: socketio.AsyncServer, app: web.Application) -> None:
    """``/``: echo with ack. ``/chat``: clients of team blue share a room; ``shout`` goes to it."""

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> bool:
        return isinstance(auth, dict) and auth.get("token") == TOKEN

    @sio.on("echo")
    async def echo(sid: str, data: Any) -> Any:
        await sio.emit("echoed", data, to=sid)
        return {"ok": True}

    @sio.on("connect", namespace="/chat")
    async def chat_connect(sid: str, environ: dict[str, Any], auth: Any) -> bool:
        if not (isinstance(auth, dict) and auth.get("token") == TOKEN):
            return False
        if auth.get("team") == "blue":
            await sio.enter_room(sid, "blue", namespace="/chat")
        return True

    @sio.on("shout", namespace="/chat")
    async def shout(sid: str, data: Any) -> None:
        await sio.emit("shouted", data, room="blue", namespace="/chat")

    @sio.on("hello", namespace="/chat")
    async def hello(sid: str, data: Any) -> None:
        await sio.emit("hi", {"to": data}, to=sid, namespace="/chat")


class Inbox:
    """Every event an /admin client received, in order; ``expect`` waits for a match."""

    def __init__(self) -> None:
        self.items: list[tuple[str, tuple[Any, ...]]] = []
        self._changed = asyncio.Event()

    async def put(self, event: str, *args: Any) -> None:
        self.items.append((event, args))
        self._changed.set()

    def find(self, event: str, pred: Callable[..., bool] = lambda *a: True
             ) -> list[tuple[Any, ...]]:
        return [args for name, args in self.items if name == event and pred(*args)]

    async def expect(self, event: str, pred: Callable[..., bool] = lambda *a: True,
                     timeout: float = 10.0) -> tuple[Any, ...]:
        async def wait() -> tuple[Any, ...]:
            while True:
                found = self.find(event, pred)
                if found:
                    return found[0]
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout)
        except asyncio.TimeoutError:
            seen = [name for name, _ in self.items]
            raise AssertionError(f"no matching {event!r} within {timeout} s; got {seen}") from None


async def admin_client(url: str, auth: dict[str, Any] | None) -> tuple[socketio.AsyncClient,
                                                                          Inbox]:
    client = socketio.AsyncClient(reconnection=False)
    inbox = Inbox()
    client.on("*", inbox.put, namespace="/admin")
    await client.connect(url, namespaces=["/admin"], auth=auth, transports=["websocket"])
    return client, inbox


@dataclass
class Rig:
    """Upstream server, the Sniffer in front of it and the bridge it feeds."""

    upstream: Any
    sniffer: Sniffer
    bridge: AdminUIBridge
    clients: list[socketio.AsyncClient] = field(default_factory=list)

    async def client(self, namespaces: list[str], team: str,
                     transports: list[str] | None = None) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(self.sniffer.url, namespaces=namespaces,
                             auth={"token": TOKEN, "team": team},
                             transports=transports or ["polling", "websocket"])
        self.clients.append(client)
        return client


@contextlib.asynccontextmanager
async def rig(py_server_factory: Any, **bridge_kwargs: Any) -> AsyncIterator[Rig]:
    upstream = await py_server_factory(setup_upstream)
    bridge_kwargs.setdefault("interval", 0.2)
    bridge = AdminUIBridge("127.0.0.1", 0, **bridge_kwargs)
    # Short analysis windows so inferred rooms are known well within a test's time.
    analysis = AnalysisConfig(deadline=0.3, duplicate_window=0.3, broadcast_window=0.1)
    sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=upstream.url,
                                  analysis=analysis),
                      sinks=[bridge.record], tap_sinks=[bridge.tap])
    bridge.watch_rooms(sniffer.rooms)
    await sniffer.start()
    await bridge.start()
    state = Rig(upstream, sniffer, bridge)
    try:
        yield state
    finally:
        for client in state.clients:
            with contextlib.suppress(Exception):
                await client.disconnect()
        await bridge.stop()
        await sniffer.stop()


class NodeClient:
    """tests/adminui/node_client.js: a socket.io-client that starts on polling and upgrades
    after its namespace connected (python-socketio's client upgrades before)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, url: str, nsp: str, auth: dict[str, Any],
                    polling_only: bool = False) -> NodeClient:
        env = dict(os.environ, NODE_PATH=str(NODE_MODULES))
        opts = {"url": url, "nsp": nsp, "auth": auth, "pollingOnly": polling_only}
        proc = await asyncio.create_subprocess_exec(
            "node", str(NODE_CLIENT), json.dumps(opts),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env)
        return cls(proc)

    async def line(self, event: str, timeout: float = 10.0) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            if not raw:
                raise AssertionError(f"node client exited before {event!r}")
            msg: dict[str, Any] = json.loads(raw)
            if msg["event"] == event:
                return msg

    async def kill(self) -> None:
        """SIGKILL: the client vanishes without a Socket.IO or Engine.IO goodbye."""
        self.proc.kill()
        await self.proc.wait()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
