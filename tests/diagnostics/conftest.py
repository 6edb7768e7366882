"""Fixtures for the diagnostic suite: the embedded diagnostic server and real clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from sio_sniffer.diagnostics.clients import close_client
from sio_sniffer.diagnostics.server import DiagnosticServer
from sio_sniffer.testing import Recorder
from tests.diagnostics.diag_helpers import Dashboard

ServerFactory = Callable[..., Any]


@pytest.fixture
async def diag_server() -> AsyncIterator[ServerFactory]:
    """Start DiagnosticServers on free loopback ports; returns (server, recorder)."""
    started: list[DiagnosticServer] = []

    async def make(layout: str = "claude-mpm", **kwargs: Any) -> tuple[DiagnosticServer,
                                                                      Recorder]:
        recorder = Recorder()
        server = DiagnosticServer(layout, "127.0.0.1", 0, sinks=[recorder], **kwargs)
        await server.start()
        started.append(server)
        return server, recorder

    yield make
    for server in started:
        await server.stop()


@pytest.fixture
async def dashboards() -> AsyncIterator[Callable[..., Dashboard]]:
    made: list[Dashboard] = []

    def make(**kwargs: Any) -> Dashboard:
        dash = Dashboard(**kwargs)
        made.append(dash)
        return dash

    yield make
    for dash in made:
        await close_client(dash.client)
