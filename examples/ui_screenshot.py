"""Regenerate examples/ui.png: the live page in Chromium over a real session with a lost event.

The diagnostic server (claude-mpm layout) runs behind a sniffer with the live page. A hook POST
arrives while no dashboard is connected (the analysis flags it lost: nobody was listening), then
two dashboards connect (one stays on polling), hook POSTs and a client's acknowledged emits flow
through, and the page is photographed with the lost flag selected.

    python3 examples/ui_screenshot.py [OUT.png]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import socketio
from playwright.async_api import async_playwright

from sio_sniffer.analysis import AnalysisConfig, load_profile
from sio_sniffer.diagnostics.clients import close_client, hook_body, new_nonce
from sio_sniffer.diagnostics.server import INGEST_PATH, DiagnosticServer
from sio_sniffer.model import Record
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from sio_sniffer.web.live import LiveUI

OUT = Path(__file__).resolve().parent / "ui.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


async def main(out: Path) -> None:
    server = DiagnosticServer("claude-mpm", "127.0.0.1", 0, ping_interval=5, ping_timeout=5)
    await server.start()
    ui = LiveUI("127.0.0.1", 0, title="sio-sniffer: claude-mpm monitor")
    lost = asyncio.Event()

    def on_record(record: Record) -> None:
        if record.event == "flag" and record.get("flag") == "lost":
            lost.set()

    analysis = AnalysisConfig(deadline=0.4, profile=load_profile("claude-mpm"))
    sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=server.url,
                                  analysis=analysis, tick_interval=0.05),
                      sinks=[ui.sink, on_record])
    ui.use_analysis(sniffer.analyzer)
    await ui.start()
    await sniffer.start()
    clients: list[socketio.AsyncClient] = []
    try:
        nonce = new_nonce()
        async with aiohttp.ClientSession() as http:
            async with http.post(sniffer.url + INGEST_PATH, json=hook_body(0, nonce)) as r:
                r.raise_for_status()
            await asyncio.wait_for(lost.wait(), 10)
            for transports in (["websocket"], ["polling"]):
                client = socketio.AsyncClient(reconnection=False)
                await client.connect(sniffer.url, transports=transports, wait_timeout=5)
                clients.append(client)
            for seq in range(1, 13):
                async with http.post(sniffer.url + INGEST_PATH, json=hook_body(seq, nonce)) as r:
                    r.raise_for_status()
        for seq in range(3):
            await clients[0].call("claude_event", {"type": "hook", "subtype": "post_tool",
                                                   "data": {"n": seq}})
        # Binary stays with the sender: python-engineio cannot put it in a polling payload.
        await clients[0].call("upload", {"name": "blob.bin", "data": b"\x00\x01sio\xff"})
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium",
                                               args=CHROMIUM_ARGS)
            page = await browser.new_page(viewport={"width": 1400, "height": 860})
            await page.goto(ui.url)
            await page.wait_for_function(
                "last => Number(document.getElementById('shown').dataset.last) >= last",
                arg=ui.records)
            # Pick the lost flag through the kind filter, then list the events and acks: the
            # details pane keeps the flag's cause and fix.
            await page.select_option("#f-kind", "flags")
            await page.locator("#items .row.k-flag", has_text="lost").first.click()
            await page.select_option("#f-kind", "events")
            await page.screenshot(path=str(out))
            await browser.close()
    finally:
        for client in clients:
            await close_client(client)
        await sniffer.stop()
        await ui.stop()
        await server.stop()
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
