"""Shared fixtures: real python-socketio servers on free loopback ports, and one real captured
session (recorded once) for the capture, replay and report tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp import web
from playwright.async_api import Browser, async_playwright

# One free-port helper for the package's bench and every test ("from tests.conftest import ...").
from sio_sniffer.diagnostics.browser import CHROMIUM, CHROMIUM_ARGS
from sio_sniffer.testing import free_port
from tests.capture.capture_peers import AppServer, capture_session

__all__ = ["PyServer", "browser", "free_port", "py_server_factory"]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium, as the sniffer's own browser check launches it."""
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield chromium
        finally:
            await chromium.close()


class PyServer:
    """A python-socketio AsyncServer on aiohttp, bound to 127.0.0.1 on a free port."""

    def __init__(self, sio: socketio.AsyncServer, app: web.Application) -> None:
        self.sio = sio
        self.app = app
        self.runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def py_server_factory() -> AsyncIterator[Callable[..., Any]]:
    servers: list[PyServer] = []

    async def make(setup: Callable[[socketio.AsyncServer, web.Application], None] | None = None,
                   **kwargs: Any) -> PyServer:
        # Short heartbeats: python-socketio's polling client only finishes disconnect() when
        # its pending long-poll gives up (ping interval + timeout), 45 s with the defaults.
        kwargs.setdefault("ping_interval", 1)
        kwargs.setdefault("ping_timeout", 1)
        sio = socketio.AsyncServer(async_mode="aiohttp", **kwargs)
        app = web.Application()
        sio.attach(app)
        if setup is not None:
            setup(sio, app)
        server = PyServer(sio, app)
        await server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


@pytest.fixture(scope="session")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One capture with secrets of a python-socketio client and a Node client, shared."""
    path = tmp_path_factory.mktemp("cap") / "session.jsonl"

    async def main() -> None:
        srv = AppServer()
        await srv.start()
        try:
            await capture_session(srv.url, path, show_secrets=True)
        finally:
            await srv.stop()

    asyncio.run(main())
    return path


