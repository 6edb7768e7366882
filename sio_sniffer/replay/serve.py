"""``replay --serve``: a python-socketio server playing a captured client's server side."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import socketio
from aiohttp import web

from sio_sniffer.capture import CaptureError
from sio_sniffer.model.addresses import show_address
from sio_sniffer.replay.script import Observed, Script
from sio_sniffer.web.app import serve_app


class ServedCapture:
    """A python-socketio server playing one captured client's server side to anyone connecting."""

    def __init__(self, script: Script, client: str | None = None,
                 speed: float | None = 1.0) -> None:
        if not script.clients:
            raise CaptureError("the capture has no Socket.IO client to play the server side of")
        chosen = client or max(script.clients, key=lambda c: len(script.clients[c].expected))
        if chosen not in script.clients:
            raise CaptureError(f"no captured client {chosen!r}; captured: "
                               f"{', '.join(script.clients)}")
        self.source = script.clients[chosen]
        self.speed = speed
        self.sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
        self.app = web.Application()
        self.sio.attach(self.app)
        self.sio.on("connect", self._connect, namespace="*")
        self.sio.on("*", self._client_event, namespace="*")
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""
        self.port = 0
        # Per namespace: each captured event and its delay after the captured CONNECT answer.
        self._timeline: dict[str, list[tuple[float, Observed]]] = {}
        for obs in self.source.expected:
            if obs.kind == "event":
                base = self.source.connected_at.get(obs.nsp, obs.ts)
                self._timeline.setdefault(obs.nsp, []).append((max(obs.ts - base, 0.0), obs))

    async def start(self, host: str, port: int) -> None:
        self._runner, bound = await serve_app(self.app, host, port)
        self.port = bound
        self.url = f"http://{show_address(host, bound)}"

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _connect(self, namespace: str, sid: str, environ: Any, auth: Any = None) -> None:
        task = asyncio.create_task(self._play(namespace, sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play(self, namespace: str, sid: str) -> None:
        start = time.monotonic()
        # Let the CONNECT answer go out before the first event, as a real server's would.
        await asyncio.sleep(0)
        for offset, obs in self._timeline.get(namespace, []):
            if self.speed is not None:
                delay = start + offset / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            data = tuple(obs.args) if obs.args else None
            await self.sio.emit(obs.name, data, to=sid, namespace=namespace)

    async def _client_event(self, event: str, namespace: str, sid: str, *args: Any) -> Any:
        for obs in self.source.expected:
            if obs.kind == "ack" and obs.nsp == namespace and obs.name == event:
                return tuple(obs.args)
        return None
