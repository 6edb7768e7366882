"""The official Admin UI (npm @socket.io/admin-ui), served offline by `sio-sniffer proxy
--admin-ui-static`, shows in headless Chromium the sockets, namespaces and events of an
uninstrumented python-socketio server seen through the sniffer."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import socketio
from playwright.async_api import Page, Route, async_playwright, expect

from sio_sniffer.diagnostics.browser import CHROMIUM, CHROMIUM_ARGS
from tests.conftest import free_port
from tests.paths import ROOT
from tests.web.adminui.adminui_peers import PASSWORD, TOKEN, USER, setup_upstream


@contextlib.asynccontextmanager
async def proxy_cli(upstream: str, dist: Path, log: Path) -> AsyncIterator[tuple[str, str]]:
    """`sio-sniffer proxy --admin-ui ... --admin-ui-static ...`: (sniffer url, Admin UI url)."""
    listen, admin = free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "proxy", "--listen", f"127.0.0.1:{listen}",
        "--upstream", upstream, "--log", str(log), "--admin-ui", f"127.0.0.1:{admin}",
        "--admin-ui-user", USER, "--admin-ui-password", PASSWORD, "--admin-ui-static", str(dist),
        cwd=ROOT, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    try:
        banner = b""
        while b"Admin UI server" not in banner:
            line = await asyncio.wait_for(proc.stderr.readline(), 20)
            assert line, f"sio-sniffer exited early: {banner.decode()}"
            banner += line
        assert f"open http://127.0.0.1:{admin}/".encode() in banner
        yield f"http://127.0.0.1:{listen}", f"http://127.0.0.1:{admin}"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()


async def pick_namespace(page: Page, nsp: str) -> None:
    await page.get_by_label("Select namespace").click(force=True)
    await page.locator(".v-menu__content .v-list-item", has_text=re.compile(
        rf"^\s*{re.escape(nsp)}\s*$")).click()


async def test_admin_ui_shows_sniffed_sockets_namespaces_and_events(
        py_server_factory: Any, admin_ui_dist: Path, tmp_path: Path) -> None:
    """Logged in through its own form, the Admin UI lists every socket on "/" and "/chat"
    with its transport, the namespaces with their socket counts, and the events received and
    sent, with no request leaving the machine."""
    upstream = await py_server_factory(setup_upstream)
    async with proxy_cli(upstream.url, admin_ui_dist, tmp_path / "log.jsonl") as (sniffer, ui):
        clients = []
        for nsps, team, transports in ((["/", "/chat"], "blue", ["polling", "websocket"]),
                                       (["/chat"], "red", ["polling"])):
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(sniffer, namespaces=nsps, auth={"token": TOKEN, "team": team},
                                 transports=transports)
            clients.append(client)
        a, b = clients
        outside: list[str] = []

        async def offline(route: Route) -> None:
            if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
                await route.continue_()
            else:
                outside.append(route.request.url)
                await route.abort()

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM,
                                               args=list(CHROMIUM_ARGS))
            try:
                page = await browser.new_page()
                await page.route("**/*", offline)
                await page.goto(ui + "/")
                # The bridge pre-fills its own address; the first try has no credentials.
                await expect(page.get_by_text("Invalid credentials")).to_be_visible()
                await expect(page.get_by_label("Server URL")).to_have_value(ui)
                await page.get_by_label("Username").fill(USER)
                await page.get_by_label("Password").fill(PASSWORD)
                await page.get_by_role("button", name="Connect").click()
                await expect(page.get_by_label("Username")).to_be_hidden()

                namespaces = page.locator(".v-card", has_text="Namespaces").locator("tbody")
                await expect(namespaces).to_contain_text(re.compile(r"/chat\s*2"))
                await expect(namespaces).to_contain_text(re.compile(r"/\s*1"))

                await page.goto(ui + "/#/sockets/")
                table = page.locator(".v-data-table", has_text="IP address")
                await expect(table).to_contain_text(a.get_sid("/"))
                await expect(table).to_contain_text("WebSocket")
                await pick_namespace(page, "/chat")
                for client, transport in ((a, "WebSocket"), (b, "HTTP long-polling")):
                    row = table.locator("tr", has_text=client.get_sid("/chat"))
                    await expect(row).to_contain_text(transport)
                    await expect(row).to_contain_text("127.0.0.1")

                await page.goto(ui + "/#/events/")
                await b.emit("hello", "from-b", namespace="/chat")
                events = page.locator(".v-data-table", has_text="Timestamp")
                received = events.locator("tr", has_text="Event received").filter(
                    has_text="hello")
                await expect(received).to_contain_text(b.get_sid("/chat"))
                sent = events.locator("tr", has_text="Event sent").filter(has_text="hi")
                await expect(sent).to_contain_text(b.get_sid("/chat"))

                await page.goto(ui + f"/#/n/%2Fchat/sockets/{a.get_sid('/chat')}")
                details = page.locator(".v-card", has_text="Details")
                await expect(details).to_contain_text(a.eio.sid)
                await expect(details).to_contain_text("/chat")
            finally:
                await browser.close()
        for client in clients:
            await client.disconnect()
        assert outside == []
