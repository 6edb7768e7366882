"""HAR files recorded by real headless Chromium are read and analysed like captures."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from sio_sniffer import model
from sio_sniffer.capture.har import HarReader, is_har
from sio_sniffer.model.tap import HttpRequest, WsMessage
from sio_sniffer.report import build_report, open_inputs
from tests.paths import NODE_MODULES

HERE = Path(__file__).resolve().parent


@pytest.fixture
async def node_server() -> AsyncIterator[str]:
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    proc = await asyncio.create_subprocess_exec(
        "node", str(HERE / "node_server.js"), stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        port = int((await asyncio.wait_for(proc.stdout.readline(), 20)).strip())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.kill()
        await proc.wait()


async def record_har(url: str, har: Path) -> str:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium")
        context = await browser.new_context(record_har_path=str(har))
        page = await context.new_page()
        await page.goto(url)
        await page.wait_for_function(
            "document.getElementById('log').textContent.includes('done')", timeout=20_000)
        log = await page.inner_text("#log")
        await context.close()
        await browser.close()
    return log


async def test_chromium_har_is_read_and_analysed(node_server: str, tmp_path: Path) -> None:
    """A Chromium HAR of a page on polling->WebSocket yields the session, events, acks and
    binary messages through the same pipeline as the proxy."""
    har = tmp_path / "browser.har"
    log = await record_har(node_server + "/?t=polling,websocket", har)
    assert "ack {\"ok\":true}" in log and "bin 3,2,1" in log
    assert is_har(har)
    reader = HarReader(har)
    events = list(reader)
    assert reader.problems == []
    assert any(isinstance(e, HttpRequest) and "transport=polling" in e.target for e in events)
    ws = [e for e in events if isinstance(e, WsMessage)]
    assert any(e.dir == "in" and e.payload == b"2probe" for e in ws)
    assert any(e.dir == "out" and e.opcode == 2 and e.payload == b"\x03\x02\x01" for e in ws)
    report = build_report(open_inputs([har]))
    assert report.problems == []
    assert len(report.clients) == 1
    client = next(iter(report.clients.values()))
    assert client.transport == "polling" and client.upgraded
    assert client.namespaces == ["/"]
    assert report.events[("/", "echo", "in")] == 1
    assert report.events[("/", "echoed", "out")] == 1
    assert report.events[("/", "bin_back", "out")] == 1
    assert report.counts[model.SIO_ACK] == 1
    assert "echo" in report.text()


async def test_chromium_websocket_only_har(node_server: str, tmp_path: Path) -> None:
    """A Chromium HAR of a WebSocket-only page yields a websocket session with its events."""
    har = tmp_path / "ws.har"
    await record_har(node_server + "/?t=websocket", har)
    report = build_report(open_inputs([har]))
    assert [c.transport for c in report.clients.values()] == ["websocket"]
    assert report.events[("/", "welcome", "out")] == 1
    assert report.events[("/", "bin", "in")] == 1
