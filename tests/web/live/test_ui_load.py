"""Load: 50,000 real events in one page, and a page that stops reading."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from playwright.async_api import Page, expect

from sio_sniffer.model import Record
from sio_sniffer.web.live import LiveUI
from tests.paths import ROOT
from tests.web.live.ui_peers import Stack, node_env

StackFactory = Callable[..., Awaitable[Stack]]
RECEIVED = "last => Number(document.getElementById('shown').dataset.last) >= last"
BURST = 50_000


@pytest.fixture
async def node_server() -> AsyncIterator[str]:
    """The Node socket.io peer server of the transport tests (it answers "burst" with ticks)."""
    proc = await asyncio.create_subprocess_exec(
        "node", str(ROOT / "tests" / "node" / "peer_server.js"), "{}",
        stdout=asyncio.subprocess.PIPE, env=node_env())
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    yield f"http://127.0.0.1:{json.loads(line)['port']}"
    proc.kill()
    await proc.wait()


async def test_fifty_thousand_events_keep_the_page_bounded_and_filterable(
        stack_factory: StackFactory, node_server: str, page: Page) -> None:
    """A Node server bursts 50,000 events to a Node client through the sniffer while the page
    is open: the page receives them all, keeps only its buffer's worth (newest first kept),
    has a few dozen rows in its DOM whatever the count, and answers a filter correctly."""
    stack = await stack_factory(upstream=node_server, page_buffer=30_000)
    await page.goto(stack.ui.url)
    await expect(page.locator("#status")).to_have_text("connected")
    client = await asyncio.create_subprocess_exec(
        "node", str(ROOT / "tests" / "node" / "peer_client.js"),
        json.dumps({"url": stack.url, "transports": ["websocket"], "scenario": "burst",
                    "n": BURST}),
        stdout=asyncio.subprocess.PIPE, env=node_env())
    try:
        assert client.stdout is not None
        done = json.loads(await asyncio.wait_for(client.stdout.readline(), 60))
        assert done == {"event": "burst_done", "count": BURST}
        last = await stack.wait_for(
            lambda rs: any(r.name == "burst_done" for r in rs[-50:]), timeout=120)
    finally:
        client.kill()
        await client.wait()
    await page.wait_for_function(RECEIVED, arg=last, timeout=120_000)
    ticks = stack.count("sio.event", name="tick")(stack.records)
    assert ticks == BURST

    shown = page.locator("#shown")
    total = int((await shown.inner_text()).split(" of ")[1].split()[0])
    assert 30_000 <= total <= 33_000  # the page's bound: its buffer plus one 10 % trim chunk
    assert await page.locator("#items .row").count() < 120
    await page.locator("#rows").evaluate("el => { el.scrollTop = el.scrollHeight / 2; }")
    await expect(page.locator("#items .row:not([hidden])").first).to_be_visible()
    assert await page.locator("#items .row").count() < 120

    # Ticks carry their number: "[4999" finds 49990..49999; tick 4999 itself fell out of the
    # page's buffer long ago.
    await page.fill("#f-name", "tick")
    await page.fill("#f-text", "[4999")
    await expect(shown).to_have_text(re.compile(r"^10 of \d+ shown"), timeout=10_000)
    rows = page.locator("#items .row:not([hidden]) .c-i")
    assert sorted(await rows.all_inner_texts()) == [f"[{n}]" for n in range(49_990, 50_000)]
    await page.fill("#f-text", "")
    await page.fill("#f-name", "burst_done")
    await expect(shown).to_have_text(re.compile(r"^1 of \d+ shown"), timeout=10_000)


async def test_a_page_that_stops_reading_loses_its_oldest_records_only() -> None:
    """A page that does not read fills its socket and its bounded queue: the sink keeps
    taking records, the page is told how many it missed, and it gets the newest ones."""
    ui = LiveUI("127.0.0.1", 0, page_queue=300, history=10, flush_delay=0)
    await ui.start()
    fed = 3000
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(
                f"http://127.0.0.1:{ui.port}/ws", max_msg_size=0) as ws:
            assert (await ws.receive_json())["t"] == "hello"
            assert (await ws.receive_json())["t"] == "state"
            blob = "x" * 20_000
            for n in range(fed):
                ui.sink(Record("sio.event", float(n), eio_sid="slow", dir="out", nsp="/",
                               name="big", args=[{"n": n, "blob": blob}]))
                if n % 50 == 49:
                    # Let the flush and the page's writer run: it blocks once the socket is full.
                    for _ in range(3):
                        await asyncio.sleep(0)
            received: list[int] = []
            dropped = 0
            while not received or received[-1] != fed:
                message = await asyncio.wait_for(ws.receive_json(), 30)
                if message["t"] == "records":
                    dropped += message["dropped"]
                    received.extend(item["i"] for item in message["items"])
    finally:
        await ui.stop()
    assert dropped > 0 and len(received) < fed
    assert len(received) + dropped == fed
    assert received == sorted(received) and received[-1] == fed
