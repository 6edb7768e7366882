"""The dashboard test page in headless Chromium against the diagnostic server (python-socketio)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import expect

from sio_sniffer.diagnostics.clients import close_client, new_client, new_nonce
from sio_sniffer.diagnostics.server import Faults
from sio_sniffer.model import fingerprint
from tests.web.dashboard.dash_helpers import TIME_CELL, connected, post_hooks, probes

Factory = Callable[..., Any]
SEED = ("/", "/hook", "/system")


async def test_claude_mpm_root_upgrades_and_lists_hook_events(
        diag_server: Factory, open_page: Factory) -> None:
    """claude-mpm layout: / connects over polling then WebSocket with the server's sid, the test
    emit is acked, and each hook POST appears with a timestamp, its event name and payload."""
    server = await diag_server("claude-mpm")
    page_server, page = await open_page(server.url, ("/",))
    report = await page_server.wait_for(
        lambda r: connected(r, "/") and r.namespaces["/"].transport == "websocket", 10)
    root = report.namespaces["/"]
    assert root.upgraded and root.ack_ms is not None
    assert root.sid in server.clients("/")

    nonce = new_nonce()
    await post_hooks(server.url, 3, nonce)
    report = await page_server.wait_for(lambda r: len(probes(r, nonce)) == 3, 5)
    assert {e.name for e in probes(report, nonce).values()} == {"tool_event"}

    card = page.locator('[data-nsp="/"]')
    await expect(card.locator(".state")).to_have_text("connected")
    await expect(card.locator(".transport")).to_have_text("websocket (upgraded from polling)")
    await expect(card.locator(".sid")).to_have_text(root.sid or "")
    await expect(card.locator(".ack")).to_contain_text("ack after")
    rows = card.locator("tbody tr", has_text=nonce)
    await expect(rows).to_have_count(3)
    for seq in range(3):
        row = rows.nth(seq)
        assert re.fullmatch(TIME_CELL, await row.locator(".time").inner_text())
        assert await row.locator(".name").inner_text() == "tool_event"
        assert f'"correlation_id":"{nonce}-{seq}"' in await row.locator(".payload").inner_text()
    await expect(card.locator("tbody tr", has_text="dashboard:welcome")).to_have_count(1)
    count = int(await card.locator(".count").inner_text())
    assert count == report.namespaces["/"].events >= 4


async def test_refused_namespaces_show_the_server_message(
        diag_server: Factory, open_page: Factory) -> None:
    """claude-mpm layout has only /: the page shows /hook and /system refused with the server's
    own message, while / stays connected."""
    server = await diag_server("claude-mpm")
    page_server, page = await open_page(server.url, SEED)
    report = await page_server.wait_for(lambda r: r.settled(SEED) and connected(r, "/"), 10)
    for nsp in ("/hook", "/system"):
        view = report.namespaces[nsp]
        assert (view.state, view.error, view.errors) == ("error", "Unable to connect",
                                                         ["Unable to connect"])
        card = page.locator(f'[data-nsp="{nsp}"]')
        await expect(card.locator(".state")).to_have_attribute("data-state", "error")
        await expect(card.locator(".error")).to_have_text("Unable to connect")
    await expect(page.locator('[data-nsp="/"] .state')).to_have_text("connected")


async def test_namespaces_layout_all_connect_and_hook_emits_appear(
        diag_server: Factory, open_page: Factory) -> None:
    """Seed layout with the token: all three namespaces connect and join their rooms; a hook
    client's emits on /hook reach the page on /hook and on /, and hook POSTs reach /."""
    server = await diag_server("namespaces")
    page_server, page = await open_page(server.url, SEED, auth={"token": "dev-token"})
    report = await page_server.wait_for(lambda r: connected(r, *SEED), 10)
    await expect(page.locator("#auth")).to_have_text(fingerprint({"token": "dev-token"}))
    for nsp in SEED:
        assert report.namespaces[nsp].sid in server.clients(nsp, f"{nsp.strip('/') or 'root'}"
                                                                 "_room")

    nonce = new_nonce()
    hook = new_client()
    await hook.connect(server.url, namespaces=["/hook"], auth={"token": "dev-token"})
    try:
        for seq in range(3):
            await hook.emit("claude_event", {"type": "hook", "data": {"probe": nonce,
                                                                      "seq": seq}},
                            namespace="/hook")
        report = await page_server.wait_for(
            lambda r: len(probes(r, nonce, "/")) == 3 and len(probes(r, nonce, "/hook")) == 3, 5)
    finally:
        await close_client(hook)
    for nsp in ("/", "/hook"):
        rows = page.locator(f'[data-nsp="{nsp}"] tbody tr', has_text=nonce)
        await expect(rows).to_have_count(3)
        assert re.fullmatch(TIME_CELL, await rows.first.locator(".time").inner_text())
        assert await rows.first.locator(".name").inner_text() == "claude_event"

    posted = new_nonce()
    await post_hooks(server.url, 2, posted)
    await page_server.wait_for(lambda r: len(probes(r, posted, "/")) == 2, 5)
    await expect(page.locator('[data-nsp="/"] tbody tr', has_text=posted)).to_have_count(2)


async def test_wrong_token_is_refused_with_the_server_message(
        diag_server: Factory, open_page: Factory) -> None:
    """Seed layout with a wrong token: every namespace shows 'Invalid authentication token'."""
    server = await diag_server("namespaces")
    page_server, page = await open_page(server.url, SEED, auth={"token": "wrong"})
    report = await page_server.wait_for(lambda r: r.settled(SEED), 10)
    for nsp in SEED:
        assert report.namespaces[nsp].error == "Invalid authentication token"
        await expect(page.locator(f'[data-nsp="{nsp}"] .error')).to_have_text(
            "Invalid authentication token")


@pytest.mark.parametrize(("transports", "faults", "expected"), [
    (("polling",), None, "polling"),
    (("websocket",), None, "websocket"),
    (("polling", "websocket"), Faults(polling_only=True), "polling"),
], ids=["polling-only", "websocket-only", "server-without-upgrade"])
async def test_single_transport_runs(diag_server: Factory, open_page: Factory,
                                     transports: tuple[str, ...], faults: Faults | None,
                                     expected: str) -> None:
    """The built-in client works on polling alone and on WebSocket alone (and stays on polling
    when the server offers no upgrade): all namespaces connect, acks and events arrive."""
    server = await diag_server("namespaces", faults=faults)
    page_server, page = await open_page(server.url, SEED, auth={"token": "dev-token"},
                                        transports=transports)
    report = await page_server.wait_for(lambda r: connected(r, *SEED), 10)
    for nsp in SEED:
        assert (report.namespaces[nsp].transport, report.namespaces[nsp].upgraded) == (
            expected, False)
    nonce = new_nonce()
    await post_hooks(server.url, 3, nonce)
    await page_server.wait_for(lambda r: len(probes(r, nonce, "/")) == 3, 5)
    await expect(page.locator('[data-nsp="/"] tbody tr', has_text=nonce)).to_have_count(3)
    await expect(page.locator('[data-nsp="/hook"] .transport')).to_have_text(expected)
    for nsp in SEED:
        assert server.sio.transport(report.namespaces[nsp].sid, nsp) == expected


async def test_unanswered_connect_is_shown(diag_server: Factory, open_page: Factory) -> None:
    """claude-mpm's auth bug: a CONNECT with auth is never answered, and the page says so."""
    server = await diag_server("claude-mpm", faults=Faults(ignore_auth_connect=True))
    page_server, page = await open_page(server.url, ("/",), auth={"token": "dev-token"},
                                        connect_timeout=1.5)
    report = await page_server.wait_for(lambda r: r.settled(("/",)), 10)
    assert report.namespaces["/"].state == "unanswered"
    await expect(page.locator('[data-nsp="/"] .error')).to_have_text(
        "no answer to CONNECT within 1.5 s")
    await expect(page.locator('[data-nsp="/"] .state')).to_have_attribute("data-state",
                                                                          "unanswered")
