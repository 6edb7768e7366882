"""Fixtures for the dashboard page tests: servers, a headless Chromium, and the page on it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from sio_sniffer.diagnostics.server import DiagnosticServer
from sio_sniffer.web.dashboard_page import DashboardPage
from tests.paths import NODE_MODULES

HERE = Path(__file__).resolve().parent


@pytest.fixture
async def diag_server() -> AsyncIterator[Callable[..., Any]]:
    """Start DiagnosticServers on free loopback ports (short heartbeats for quick stops)."""
    started: list[DiagnosticServer] = []

    async def make(layout: str = "claude-mpm", **kwargs: Any) -> DiagnosticServer:
        kwargs.setdefault("ping_interval", 5)
        kwargs.setdefault("ping_timeout", 5)
        server = DiagnosticServer(layout, "127.0.0.1", 0, **kwargs)
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
async def node_server() -> AsyncIterator[Callable[..., Any]]:
    """Start tests/dashboard/node_server.js with JSON options; returns its URL."""
    procs: list[asyncio.subprocess.Process] = []

    async def make(**opts: Any) -> str:
        env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
        proc = await asyncio.create_subprocess_exec(
            "node", str(HERE / "node_server.js"), json.dumps(opts), stdout=subprocess.PIPE,
            env=env)
        procs.append(proc)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        return f"http://127.0.0.1:{json.loads(line)['port']}"

    yield make
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@pytest.fixture
async def open_page(browser: Browser) -> AsyncIterator[Callable[..., Any]]:
    """Serve the dashboard test page for a server and open it in Chromium."""
    servers: list[DashboardPage] = []

    async def make(url: str, namespaces: tuple[str, ...] = ("/",), *,
                   client: str = "builtin", **kwargs: Any) -> tuple[DashboardPage, Page]:
        page_server = DashboardPage(url, namespaces, client=client, **kwargs)
        await page_server.start()
        servers.append(page_server)
        page = await browser.new_page()
        await page.goto(page_server.url)
        return page_server, page

    yield make
    for page_server in servers:
        await page_server.stop()
