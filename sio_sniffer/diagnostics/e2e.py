"""`sio-sniffer e2e`: hook → server → dashboard through the sniffer, counted and timed.

Starts the diagnostic server (claude-mpm layout) unless ``--target`` names a running one, puts a
sniffer in front of it, connects a simulated dashboard (python-socketio client) through the
sniffer and fires N hook POSTs through it. Each event carries a nonce and a sequence number, so
its arrival is found whatever name or shape the server relays it under.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from sio_sniffer.diagnostics.clients import (
    close_client,
    find_probe,
    hook_body,
    new_client,
    new_nonce,
    percentile,
)
from sio_sniffer.diagnostics.observe import Observer
from sio_sniffer.diagnostics.server import INGEST_PATH, DiagnosticServer
from sio_sniffer.support.progress import ProgressBar

SETTLE = 3.0  # how long after the last send an event may still arrive


@dataclass
class FlowResult:
    target: str
    sniffer: str
    events: int
    delivered: int = 0
    duplicates: int = 0
    post_failures: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    names: dict[str, int] = field(default_factory=dict)
    flags: list[dict[str, Any]] = field(default_factory=list)
    problem: str | None = None

    @property
    def lost(self) -> int:
        return self.events - self.delivered

    def summary(self) -> dict[str, Any]:
        return {
            "target": self.target, "sniffer": self.sniffer, "events": self.events,
            "delivered": self.delivered, "lost": self.lost, "duplicates": self.duplicates,
            "post_failures": self.post_failures, "names": self.names,
            "latency_ms": {f"p{p}": round(percentile(self.latencies_ms, p), 3)
                           for p in (50, 90, 99)},
            "flags": self.flags, "problem": self.problem}


async def flow(events: int, target: str | None = None, progress: ProgressBar | None = None,
               auth: Any = None) -> FlowResult:
    """Run the end-to-end flow once; never raises for a broken target (``problem`` says)."""
    server: DiagnosticServer | None = None
    if target is None:
        server = DiagnosticServer("claude-mpm", "127.0.0.1", 0)
        await server.start()
        target = server.url
    observer = Observer(target)
    try:
        url = await observer.start()
        result = FlowResult(target, url, events)
        await _drive(url, result, progress, auth)
    finally:
        await observer.stop()
        if server is not None:
            await server.stop()
    result.flags = [f.to_dict() for f in observer.flags()]
    return result


async def _drive(url: str, result: FlowResult, progress: ProgressBar | None,
                 auth: Any) -> None:
    nonce = new_nonce()
    sent_at: dict[int, float] = {}
    arrived: set[int] = set()
    all_in = asyncio.Event()
    dashboard = new_client()

    async def on_any(name: str, *args: Any) -> None:
        seq = find_probe(list(args), nonce)
        if seq is None:
            return
        if seq in arrived:
            result.duplicates += 1
            return
        arrived.add(seq)
        result.names[name] = result.names.get(name, 0) + 1
        if seq in sent_at:
            result.latencies_ms.append((time.monotonic() - sent_at[seq]) * 1000)
        result.delivered = len(arrived)
        if progress is not None:
            progress.update(result.delivered, "delivered")
        if result.delivered == result.events:
            all_in.set()

    dashboard.on("*", on_any)
    try:
        await dashboard.connect(url, auth=auth, wait_timeout=5)
    except Exception as exc:
        result.problem = f"the dashboard client could not connect: {exc}"
        await close_client(dashboard)
        return
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            for seq in range(result.events):
                sent_at[seq] = time.monotonic()
                try:
                    async with http.post(url + INGEST_PATH, json=hook_body(seq, nonce)) as r:
                        if not 200 <= r.status < 300:
                            result.post_failures.append(f"event {seq}: HTTP {r.status}")
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    result.post_failures.append(f"event {seq}: {exc!r}")
        if result.events:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(all_in.wait(), SETTLE)
    finally:
        await close_client(dashboard)
