"""Real peers for the live page tests: diagnostic server, sniffer with its page, Chromium."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import socketio

from sio_sniffer.analysis import AnalysisConfig, load_profile
from sio_sniffer.diagnostics.clients import close_client
from sio_sniffer.diagnostics.server import DiagnosticServer
from sio_sniffer.model import Record
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from sio_sniffer.web.live import LiveUI
from tests.paths import NODE_MODULES


class Stack:
    """Diagnostic server <- sniffer (analysis on, short deadline) with the live page in front."""

    def __init__(self, layout: str = "claude-mpm", deadline: float = 0.3,
                 upstream: str | None = None, ui_host: str = "127.0.0.1", **ui: Any) -> None:
        self.server = DiagnosticServer(layout, "127.0.0.1", 0, ping_interval=5, ping_timeout=5) \
            if upstream is None else None
        self.upstream = upstream
        self.ui = LiveUI(ui_host, 0, **ui)
        self.deadline = deadline
        self.clients: list[socketio.AsyncClient] = []
        self.sniffer: Sniffer | None = None
        self.records: list[Record] = []
        self._waiters: list[tuple[Callable[[list[Record]], bool], asyncio.Event]] = []

    async def start(self) -> None:
        if self.server is not None:
            await self.server.start()
            self.upstream = self.server.url
        assert self.upstream is not None
        analysis = AnalysisConfig(deadline=self.deadline, profile=load_profile("claude-mpm"))
        self.sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=self.upstream,
                                           analysis=analysis, tick_interval=0.05),
                               sinks=[self.ui.sink, self._sink])
        self.ui.use_analysis(self.sniffer.analyzer)
        await self.ui.start()
        await self.sniffer.start()

    def _sink(self, record: Record) -> None:
        # After the page's sink: when a waiter wakes, the page's record counter includes this.
        self.records.append(record)
        for condition, event in self._waiters:
            if not event.is_set() and condition(self.records):
                event.set()

    async def wait_for(self, condition: Callable[[list[Record]], bool],
                       timeout: float = 10.0) -> int:
        """Wait until the records so far satisfy ``condition``; returns the page's seq then."""
        event = asyncio.Event()
        if condition(self.records):
            event.set()
        self._waiters.append((condition, event))
        await asyncio.wait_for(event.wait(), timeout)
        self._waiters.remove((condition, event))
        return self.ui.records

    def count(self, kind: str, **fields: Any) -> Callable[[list[Record]], int]:
        """Counts records of ``kind`` whose attributes equal ``fields``."""
        return lambda records: sum(
            1 for r in records
            if r.event == kind and all(getattr(r, k) == v for k, v in fields.items()))

    @property
    def url(self) -> str:
        assert self.sniffer is not None
        url: str = self.sniffer.url
        return url

    async def client(self, transports: list[str] | None = None, **kwargs: Any
                     ) -> socketio.AsyncClient:
        """A python-socketio client connected through the sniffer."""
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(self.url, transports=transports or ["websocket"], wait_timeout=5,
                             **kwargs)
        self.clients.append(client)
        return client

    async def stop(self) -> None:
        for client in self.clients:
            await close_client(client)
        if self.sniffer is not None:
            await self.sniffer.stop()
        await self.ui.stop()
        if self.server is not None:
            await self.server.stop()


def node_env() -> dict[str, str]:
    return {**os.environ, "NODE_PATH": str(NODE_MODULES)}
