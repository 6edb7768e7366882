"""Who may read the live page: a token off loopback, loopback names only, no path tricks."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from playwright.async_api import Page, expect

from sio_sniffer.commands.options import parse_ui_address
from sio_sniffer.model.addresses import is_loopback
from sio_sniffer.web.live import LiveUI
from tests.web.live.ui_peers import Stack

StackFactory = Callable[..., Awaitable[Stack]]


async def raw_get(port: int, target: str, host: str | None = None) -> tuple[int, bytes]:
    """One GET with the target sent byte for byte (no client-side normalisation)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host or f'127.0.0.1:{port}'}\r\n"
                 "Connection: close\r\n\r\n".encode("latin-1"))
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture
async def loopback_ui() -> AsyncIterator[LiveUI]:
    ui = LiveUI("127.0.0.1", 0)
    await ui.start()
    yield ui
    await ui.stop()


def test_address_parsing_and_the_loopback_rule() -> None:
    """`--ui` takes PORT, HOST:PORT or [V6]:PORT (host 127.0.0.1 by default); only
    127.0.0.1, ::1 and localhost count as loopback."""
    assert parse_ui_address("8767") == ("127.0.0.1", 8767)
    assert parse_ui_address(":0") == ("127.0.0.1", 0)
    assert parse_ui_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_ui_address("[::1]:9000") == ("::1", 9000)
    for bad in ("http", "1.2.3.4:port", "70000"):
        with pytest.raises(argparse.ArgumentTypeError, match=r"is not|out of range"):
            parse_ui_address(bad)
    loopback = ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST")
    assert all(is_loopback(h) for h in loopback)
    others = ("0.0.0.0", "::", "192.168.1.2", "x", "localhost.evil.example")
    assert not any(is_loopback(h) for h in others)
    assert LiveUI("127.0.0.1", 0).token is None
    assert LiveUI("0.0.0.0", 0).token is not None


async def test_non_loopback_bind_requires_the_printed_token(
        stack_factory: StackFactory, page: Page) -> None:
    """Bound to 0.0.0.0 the page, its files and its WebSocket answer 401 without the token
    (or with a wrong one); the URL it prints carries the token and works in Chromium."""
    stack = await stack_factory(ui_host="0.0.0.0")
    ui = stack.ui
    assert ui.token is not None and ui.url.endswith(f"/?token={ui.token}")
    base = f"http://127.0.0.1:{ui.port}"
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/static/app.js", "/ws", f"/?token={ui.token}x", "/?token="):
            async with http.get(base + path) as response:
                assert response.status == 401, path
                assert "token" in await response.text()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(base + "/ws")
        assert refused.value.status == 401
        async with http.ws_connect(f"{base}/ws?token={ui.token}") as ws:
            hello = await ws.receive_json()
            assert hello["t"] == "hello" and hello["mode"] == "live"
    dashboard = await stack.client()
    await page.goto(f"{base}/?token={ui.token}")
    await expect(page.locator("#status")).to_have_text("connected")
    await expect(page.locator(f'#conns tr[data-client="{dashboard.eio.sid}"]')).to_have_count(1)


async def test_loopback_page_refuses_foreign_hosts_and_origins(loopback_ui: LiveUI) -> None:
    """Without a token only loopback Host names are answered (DNS rebinding), and a
    WebSocket from another origin is refused (a web page reading the traffic)."""
    port = loopback_ui.port
    status, _ = await raw_get(port, "/", host=f"attacker.example:{port}")
    assert status == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        status, body = await raw_get(port, "/", host=host)
        assert status == 200 and b"<title>sio-sniffer</title>" in body
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"http://127.0.0.1:{port}/ws",
                                  origin="http://attacker.example")
        assert refused.value.status == 403
        async with http.ws_connect(f"http://127.0.0.1:{port}/ws",
                                   origin=f"http://127.0.0.1:{port}") as ws:
            assert (await ws.receive_json())["t"] == "hello"


TRICKS = [
    "/static/../server.py", "/static/..%2fserver.py", "/static/%2e%2e/server.py",
    "/static/%2e%2e%2f%2e%2e%2fmodel.py", "/static/..%5cserver.py", "/static/..\\server.py",
    "/static/.%2e/address.py", "/../../../../etc/passwd", "/static/%2fetc%2fpasswd",
    "/static//etc/passwd", "/static/app.js%00.py", "/static/%252e%252e%252fserver.py",
    "/static/", "/static/.", "/static/..", "/%2e%2e/%2e%2e/sio_sniffer/model.py",
    "/static/app.js/../../server.py", "/static/index.html/..%2f..%2fserver.py",
]


async def test_static_files_cannot_be_escaped(loopback_ui: LiveUI) -> None:
    """Dot segments, encoded slashes and backslashes, NUL bytes and double encoding never
    reach a file outside the page's own: they are refused, and the real files are served."""
    port = loopback_ui.port
    status, body = await raw_get(port, "/static/app.js")
    assert status == 200 and body.startswith(b"// The live page of sio-sniffer")
    for target in TRICKS:
        status, body = await raw_get(port, target)
        assert status in (400, 403, 404), (target, status)
        assert b"import " not in body and b"root:" not in body, target
