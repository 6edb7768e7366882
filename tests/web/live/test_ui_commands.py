"""The page from the command line: `proxy --ui` live, `report FILE --ui` offline."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import socketio
from playwright.async_api import Page, expect

from sio_sniffer.analysis import AnalysisConfig
from sio_sniffer.capture import CaptureWriter
from sio_sniffer.diagnostics.clients import close_client, hook_body, new_nonce
from sio_sniffer.diagnostics.server import INGEST_PATH, DiagnosticServer
from sio_sniffer.model import Record
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from tests.paths import ROOT

DEADLINE = 0.1


class Command:
    """``python -m sio_sniffer ARGS`` whose stderr lines are read as they come."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sio_sniffer", *self.args, cwd=ROOT,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)

    async def line(self, pattern: str) -> re.Match[str]:
        """The first stderr line (from here on) that matches ``pattern``."""
        assert self.proc is not None and self.proc.stderr is not None
        while True:
            raw = await asyncio.wait_for(self.proc.stderr.readline(), 30)
            assert raw, f"the command ended before printing {pattern!r}"
            found = re.search(pattern, raw.decode())
            if found:
                return found

    async def interrupt(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        return await asyncio.wait_for(self.proc.wait(), 30)

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@pytest.fixture
async def server() -> AsyncIterator[DiagnosticServer]:
    diagnostic = DiagnosticServer("claude-mpm", "127.0.0.1", 0, ping_interval=5, ping_timeout=5)
    await diagnostic.start()
    yield diagnostic
    await diagnostic.stop()


async def test_proxy_command_serves_the_live_page(server: DiagnosticServer, page: Page) -> None:
    """`proxy --ui 127.0.0.1:0` prints the page's URL; the page shows a client connecting
    through that proxy and the hook event relayed to it."""
    command = Command("proxy", "--listen", "127.0.0.1:0", "--upstream", server.url,
                      "--log", "/dev/null", "--ui", "127.0.0.1:0")
    await command.start()
    client = socketio.AsyncClient(reconnection=False)
    try:
        proxy = (await command.line(r"listening on (127\.0\.0\.1:\d+)"))[1]
        url = (await command.line(r"live page at (http://127\.0\.0\.1:\d+/)\s*$"))[1]
        await page.goto(url)
        await expect(page.locator("#status")).to_have_text("connected")
        await client.connect(f"http://{proxy}", transports=["websocket"], wait_timeout=5)
        async with aiohttp.ClientSession() as http, http.post(
                f"http://{proxy}{INGEST_PATH}", json=hook_body(0, new_nonce())) as response:
            assert response.status == 204
        await expect(page.locator(f'#conns tr[data-client="{client.eio.sid}"]')).to_contain_text(
            "dashboard")
        await expect(page.locator('#items .row[data-kind="sio.event"]', has_text="tool_event")
                     ).to_have_count(1)
        await close_client(client)
        assert await command.interrupt() == 0
    finally:
        await close_client(client)
        await command.kill()


async def capture_lost_then_delivered(server: DiagnosticServer, path: Path) -> None:
    """A hook POST nobody receives, then a dashboard that gets the next two."""
    writer = CaptureWriter(path, upstream=server.url)
    lost = asyncio.Event()

    def on_record(record: Record) -> None:
        if record.event == "flag" and record.get("flag") == "lost":
            lost.set()

    # The live analysis (same deadline as the report's) says when the capture has spanned it.
    sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=server.url,
                                  analysis=AnalysisConfig(deadline=DEADLINE),
                                  tick_interval=0.02),
                      sinks=[writer, on_record], tap_sinks=[writer.tap])
    await sniffer.start()
    dashboard = socketio.AsyncClient(reconnection=False)
    got = asyncio.Event()
    dashboard.on("tool_event", lambda data: got.set() if data["data"]["seq"] == 2 else None)
    nonce = new_nonce()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(sniffer.url + INGEST_PATH, json=hook_body(0, nonce)) as r:
                assert r.status == 204
            await asyncio.wait_for(lost.wait(), 10)
            await dashboard.connect(sniffer.url, transports=["websocket"], wait_timeout=5)
            for seq in (1, 2):
                async with http.post(sniffer.url + INGEST_PATH, json=hook_body(seq, nonce)) as r:
                    assert r.status == 204
        await asyncio.wait_for(got.wait(), 10)
        await close_client(dashboard)
    finally:
        await close_client(dashboard)
        await sniffer.stop()
        writer.close()


async def test_report_ui_loads_a_capture_into_the_page(
        server: DiagnosticServer, page: Page, tmp_path: Path) -> None:
    """`report FILE --ui` replays a capture through the analysis into the same page, in
    offline mode: the lost POST with its cause, the dashboard, the delivered events."""
    capture = tmp_path / "session.jsonl"
    await capture_lost_then_delivered(server, capture)
    command = Command("report", str(capture), "--deadline", str(DEADLINE), "--ui",
                      "127.0.0.1:0")
    await command.start()
    try:
        url = (await command.line(r"records loaded; page at (http://127\.0\.0\.1:\d+/)"))[1]
        await page.goto(url)
        await expect(page.locator("#mode")).to_have_text("offline")
        await expect(page.locator("#title")).to_have_text("sio-sniffer: session.jsonl")
        flag = page.locator("#items .row.k-flag.sev-problem", has_text="lost")
        await expect(flag).to_have_count(1)
        await expect(flag).to_contain_text("no client was connected")
        await expect(page.locator("#s-lost")).to_have_text("1")
        await expect(page.locator("#conns tbody tr", has_text="dashboard")).to_have_count(1)
        await expect(page.locator('#items .row[data-kind="sio.event"]', has_text="tool_event")
                     ).to_have_count(2)
        assert await command.interrupt() == 0
    finally:
        await command.kill()
