"""The dashboard test page and sio-sniffer's browser client against a Node socket.io server."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from sio_sniffer.diagnostics.clients import close_client, new_client, new_nonce
from tests.web.dashboard.dash_helpers import TIME_CELL, connected, post_hooks, probes

Factory = Callable[..., Any]
SEED = ("/", "/hook", "/system")

# Drives SioSniffer.io directly: binary both ways, acks both ways.
CLIENT_ROUND_TRIP = """
async ({url, transports}) => {
  const s = SioSniffer.io(url + "/hook", {transports, forceNew: true, reconnection: false});
  await new Promise((resolve, reject) => {
    s.on("connect", resolve);
    s.on("connect_error", (err) => reject(new Error(err.message)));
  });
  const bytes = (b) => Array.from(new Uint8Array(b));
  const reversedEvent = new Promise((resolve) => s.on("reversed", (p) => resolve(bytes(p.data))));
  const ackBytes = await new Promise(
    (resolve) => s.emit("reverse", new Uint8Array([1, 2, 3, 4]), (b) => resolve(bytes(b))));
  s.on("question", (q, ack) => ack({double: q.n * 2, bin: new Uint8Array([9, 8])}));
  const answer = new Promise((resolve) => s.on("answer_was", resolve));
  s.emit("ask", {n: 21});
  const answered = await answer;
  const result = {ackBytes, eventBytes: await reversedEvent, double: answered.double,
                  answerBytes: bytes(answered.bin), transport: s.io.engine.transport.name,
                  id: s.id};
  s.disconnect();
  return result;
}
"""

# Counts Engine.IO pings answered by SioSniffer.io; resolves early if the connection drops.
COUNT_PINGS = """
async ({url, transports, pings}) => {
  const s = SioSniffer.io(url, {transports, forceNew: true, reconnection: false});
  const outcome = await new Promise((resolve) => {
    let n = 0;
    s.io.on("ping", () => { if (++n === pings) resolve({pings: n, connected: s.connected}); });
    s.on("disconnect", (reason) => resolve({pings: n, dropped: reason}));
    s.on("connect_error", (err) => resolve({pings: n, error: err.message}));
  });
  outcome.transport = s.io.engine.transport.name;
  s.disconnect();
  return outcome;
}
"""


async def test_server_client_is_preferred_and_all_namespaces_connect(
        node_server: Factory, open_page: Factory) -> None:
    """With client=auto the page loads the Node server's /socket.io/socket.io.js: the seed's
    namespaces connect, an unknown one shows socket.io's refusal, and hook events show up."""
    url = await node_server()
    namespaces = (*SEED, "/admin")
    page_server, page = await open_page(url, namespaces, client="auto")
    report = await page_server.wait_for(lambda r: r.settled(namespaces) and connected(r, *SEED),
                                        10)
    assert report.client == "server"
    await expect(page.locator("#client")).to_have_text("the server's /socket.io/socket.io.js")
    assert report.namespaces["/admin"].error == "Invalid namespace"
    await expect(page.locator('[data-nsp="/admin"] .error')).to_have_text("Invalid namespace")

    nonce = new_nonce()
    await post_hooks(url, 3, nonce)
    hook = new_client()
    await hook.connect(url, namespaces=["/hook"])
    try:
        await hook.emit("claude_event", {"data": {"probe": nonce, "seq": 3}}, namespace="/hook")
        await page_server.wait_for(lambda r: len(probes(r, nonce, "/")) == 4, 5)
    finally:
        await close_client(hook)
    rows = page.locator('[data-nsp="/"] tbody tr', has_text=nonce)
    await expect(rows).to_have_count(4)
    assert re.fullmatch(TIME_CELL, await rows.last.locator(".time").inner_text())


@pytest.mark.parametrize("transports", [("polling",), ("websocket",), ("polling", "websocket")])
async def test_builtin_client_on_the_page(node_server: Factory, open_page: Factory,
                                          transports: tuple[str, ...]) -> None:
    """The built-in client against Node: all namespaces connect, the test emit is acked, a
    binary attachment in a server event is shown as bytes, upgrade only when both allowed."""
    url = await node_server()
    page_server, page = await open_page(url, SEED, transports=transports)
    expected = transports[-1]
    report = await page_server.wait_for(
        lambda r: connected(r, *SEED) and all(
            r.namespaces[n].transport == expected for n in SEED), 10)
    assert report.client == "builtin"
    assert report.namespaces["/"].upgraded is (len(transports) == 2)
    welcome = next(e for e in report.events if e.nsp == "/hook" and e.name == "welcome")
    assert welcome.args == [{"nsp": "/hook", "auth": {}, "bin": {"_binary": 3,
                                                                  "hex": "010203"}}]
    await expect(page.locator('[data-nsp="/hook"] tbody tr', has_text="welcome")).to_contain_text(
        '"_binary":3')


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
async def test_builtin_client_binary_and_acks_both_ways(
        node_server: Factory, open_page: Factory, transports: list[str]) -> None:
    """sio-client.js sends binary with an ack and gets binary back in the ack and in an event,
    and answers the server's ack request with binary inside."""
    url = await node_server()
    _, page = await open_page(url, ("/",))
    result = await page.evaluate(CLIENT_ROUND_TRIP, {"url": url, "transports": transports})
    assert result["ackBytes"] == [4, 3, 2, 1]
    assert result["eventBytes"] == [4, 3, 2, 1]
    assert (result["double"], result["answerBytes"]) == (42, [9, 8])
    assert result["transport"] == transports[-1]
    assert result["id"]


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
async def test_builtin_client_answers_pings(node_server: Factory, open_page: Factory,
                                            transports: list[str]) -> None:
    """With a 200 ms heartbeat and 300 ms timeout the client answers every ping and stays
    connected through eight of them."""
    url = await node_server(pingInterval=200, pingTimeout=300)
    _, page = await open_page(url, ("/",))
    outcome = await page.evaluate(COUNT_PINGS, {"url": url, "transports": transports,
                                                "pings": 8})
    assert outcome == {"pings": 8, "connected": True, "transport": transports[0]}


async def test_reconnect_after_a_dropped_transport(node_server: Factory,
                                                   open_page: Factory) -> None:
    """When the server drops the connection the page counts a disconnect and a reconnect, and
    events after it still arrive."""
    url = await node_server()
    page_server, page = await open_page(url, ("/", "/hook"))
    first = await page_server.wait_for(lambda r: connected(r, "/", "/hook"), 10)
    first_sid = first.namespaces["/"].sid
    async with aiohttp.ClientSession() as http, http.post(url + "/drop") as resp:
        assert resp.status == 204
    report = await page_server.wait_for(
        lambda r: connected(r, "/", "/hook") and r.namespaces["/"].reconnects == 1
        and r.namespaces["/hook"].reconnects == 1, 10)
    root = report.namespaces["/"]
    assert len(root.disconnects) == 1 and root.disconnects[0].startswith("transport close")
    assert root.reconnect_attempts >= 1
    assert root.sid not in (None, first_sid)
    await expect(page.locator('[data-nsp="/"] .reconnects')).to_contain_text("1 (attempts")
    nonce = new_nonce()
    await post_hooks(url, 2, nonce)
    await page_server.wait_for(lambda r: len(probes(r, nonce, "/")) == 2, 5)


async def test_page_needs_no_network_beyond_the_two_servers(
        node_server: Factory, open_page: Factory) -> None:
    """Every request the page makes goes to the page server or the Socket.IO server."""
    url = await node_server()
    page_server, page = await open_page(url, ("/",), client="auto")
    await page_server.wait_for(lambda r: connected(r, "/"), 10)
    origins = await page.evaluate(
        "[...new Set(performance.getEntriesByType('resource').map(e => new URL(e.name).origin))]")
    assert set(origins) <= {url, page_server.url.rstrip("/")}
