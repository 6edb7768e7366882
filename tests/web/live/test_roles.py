"""Who is who on the live page: hooks post, a browser fetching pages is neither, and a second
tab is no reconnect. Real python-socketio server and clients through the real Sniffer."""

from __future__ import annotations

from typing import Any

import aiohttp
import socketio
from aiohttp import web

from sio_sniffer.model import Record
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from sio_sniffer.web.live.state import ViewState

UA = "Mozilla/5.0 (X11; Linux x86_64) Chrome/140.0 Safari/537.36"


class Feed:
    """The live page's state, fed every record as the page server does."""

    def __init__(self) -> None:
        self.view = ViewState(live=False)
        self.seq = 0

    def __call__(self, record: Record) -> None:
        self.seq += 1
        self.view.feed(record, self.seq)


def pages(sio: socketio.AsyncServer, app: web.Application) -> None:
    async def asset(request: web.Request) -> web.Response:
        return web.Response(text="/* the dashboard's code */", content_type="text/javascript")

    async def ingest(request: web.Request) -> web.Response:
        await sio.emit("tool_event", await request.json())
        return web.Response(status=204)

    app.router.add_get("/static/app.js", asset)
    app.router.add_get("/static/app.css", asset)
    app.router.add_post("/api/events", ingest)


async def tab(url: str) -> None:
    """A browser tab: connects over websocket, then is closed (its close frame ends it)."""
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, transports=["websocket"], headers={"User-Agent": UA})
    await client.disconnect()


async def test_page_loads_are_no_hooks_and_a_second_tab_no_reconnect(
        py_server_factory: Any) -> None:
    server = await py_server_factory(pages)
    feed = Feed()
    sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=server.url), sinks=[feed])
    await sniffer.start()
    try:
        async with aiohttp.ClientSession(headers={"User-Agent": UA}) as browser:
            for name in ("app.js", "app.css"):
                async with browser.get(f"{sniffer.url}/static/{name}") as response:
                    assert response.status == 200
        await tab(sniffer.url)
        await tab(sniffer.url)  # the user opens the dashboard again: a new tab
        async with aiohttp.ClientSession(headers={"User-Agent": "curl/8.0"}) as hook, \
                hook.post(f"{sniffer.url}/api/events", json={"tool": "Bash"}) as response:
            assert response.status == 204
    finally:
        await sniffer.stop()
    snapshot = feed.view.snapshot()
    roles = {(c["kind"], c["user_agent"]): c["role"] for c in snapshot["clients"]}
    assert roles[("http", UA)] == "web"  # fetched the dashboard's files: neither hook nor client
    assert roles[("http", "curl/8.0")] == "hook"
    assert [c["role"] for c in snapshot["clients"] if c["kind"] == "session"] == ["dashboard"] * 2
    assert snapshot["stats"]["reconnects"] == 0
    sources = [n["role"] for n in snapshot["flow"]["sources"]["nodes"]]
    assert sources == ["hook"]
