"""The live page in Chromium over real traffic: clients, events as they happen, lost, filters."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable

import aiohttp
from playwright.async_api import Page, expect

from sio_sniffer.diagnostics.clients import hook_body, new_nonce
from sio_sniffer.diagnostics.server import INGEST_PATH
from tests.web.live.ui_peers import Stack

StackFactory = Callable[..., Awaitable[Stack]]
# The page has received every record up to the given number (the page's CSP forbids eval, so
# the condition is a function, not an expression).
RECEIVED = "last => Number(document.getElementById('shown').dataset.last) >= last"


async def post_hooks(url: str, count: int, nonce: str, start: int = 0) -> None:
    async with aiohttp.ClientSession() as http:
        for seq in range(start, start + count):
            async with http.post(url + INGEST_PATH, json=hook_body(seq, nonce)) as response:
                assert response.status == 204


async def test_page_shows_clients_and_events_as_they_happen(
        stack_factory: StackFactory, page: Page) -> None:
    """Opened before any traffic, the page lists each client with role and transport as it
    connects, shows hook events relayed to the dashboards as they happen, counts them on the
    flow's arrows, and shows a clicked event's payload as JSON."""
    stack = await stack_factory()
    await page.goto(stack.ui.url)
    await expect(page.locator("#status")).to_have_text("connected")
    ws_dash = await stack.client(["polling", "websocket"])
    poll_dash = await stack.client(["polling"])
    rows = page.locator("#conns tbody tr")
    await expect(rows).to_have_count(2)
    ws_row = page.locator(f'#conns tr[data-client="{ws_dash.eio.sid}"]')
    await expect(ws_row).to_contain_text("dashboard")
    await expect(ws_row).to_contain_text("polling \u2192 websocket")
    await expect(ws_row).to_contain_text("open")
    poll_row = page.locator(f'#conns tr[data-client="{poll_dash.eio.sid}"]')
    await expect(poll_row).to_contain_text("polling")
    await expect(poll_row.locator(".nsp.connected")).to_have_text("/")

    nonce = new_nonce()
    await post_hooks(stack.url, 3, nonce)
    # claude-mpm relays a pre_tool hook event as "tool_event" to every dashboard.
    delivered = page.locator('#items .row[data-kind="sio.event"]', has_text="tool_event")
    await expect(delivered).to_have_count(6)
    await expect(delivered.first.locator(".c-d")).to_have_text("\u2190 out")
    hook_row = page.locator("#conns tr", has_text="hook 127.0.0.1")
    await expect(hook_row).to_contain_text("3 / 0")
    # Each arrow counts what went along it: 3 POSTs in; to each dashboard every event it got
    # (the relayed hooks, its welcome and the client counts), as its table row says.
    await expect(page.locator("#flow")).to_contain_text("3 in \u2192")
    counts = await page.locator("#flow .count").all_text_contents()
    outs = [(await row.locator("td").nth(5).inner_text()).split(" / ")[1]
            for row in (ws_row, poll_row)]
    assert counts[0] == "3" and sorted(counts[1:]) == sorted(outs)
    assert all(int(n) >= 3 for n in outs)

    await page.locator('#items .row[data-kind="http.request"]').first.click()
    payload = page.locator("#detail pre.json").first
    await expect(payload).to_contain_text(f'"probe": "{nonce}"')
    body = json.loads(await payload.inner_text())
    assert body["data"]["data"] == {"tool_name": "Bash", "probe": nonce, "seq": 0}

    # Binary arguments are shown as a hex dump (claude-mpm's server does not relay "upload").
    await ws_dash.call("upload", {"name": "blob.bin", "data": b"\x00\x01\xfesio"})
    upload = page.locator('#items .row[data-kind="sio.event"]', has_text="upload")
    await expect(upload).to_contain_text('"data":"<6 bytes>"')
    # Paused, as a user clicks into a moving stream: the list reuses its rows as records
    # arrive, and a busy machine's late records refilled the row under the click (1 run in 10).
    await page.locator("#pause").click()
    await upload.click()
    await expect(page.locator("#detail pre.json").first).to_contain_text(
        '"data": "<binary #1: 6 bytes>"')
    await expect(page.locator("#detail pre.hex")).to_have_text(
        re.compile(r"^000000 +00 01 fe 73 69 6f +\.\.\.sio$"))


async def test_lost_event_is_shown_with_its_cause_and_fix(
        stack_factory: StackFactory, page: Page) -> None:
    """A hook POST while no dashboard is connected becomes a red `lost` flag with the cause
    and the fix, counted in the stats and drawn where it vanished in the flow view."""
    stack = await stack_factory(deadline=0.3)
    await page.goto(stack.ui.url)
    await post_hooks(stack.url, 1, new_nonce())
    flag = page.locator("#items .row.k-flag.sev-problem", has_text="lost")
    await expect(flag).to_have_count(1)
    await expect(flag.locator(".c-i")).to_contain_text("no client was connected")
    await expect(page.locator("#s-lost")).to_have_text("1")
    await expect(page.locator("#flow .node.ghost")).to_have_count(1)
    # On the arrow towards the receivers, with the cause as its tooltip.
    await expect(page.locator("#flow .lostmark")).to_contain_text(
        ["\u2715 1 lost"])
    await expect(page.locator("#flow .lostmark title")).to_contain_text(
        ["1 \u00d7 no_receivers: POST /api/events did not come out"])
    await expect(page.locator("#flow-lost li")).to_contain_text(
        ["1 lost server \u2192 receivers (no_receivers)"])
    await flag.click()
    await expect(page.locator("#detail .cause")).to_contain_text("lost (no_receivers)")
    await expect(page.locator("#detail .hint")).to_contain_text("no dashboard was listening")


async def test_filters_narrow_the_stream(stack_factory: StackFactory, page: Page) -> None:
    """Client, namespace, name, direction, kind and text filters each leave exactly the
    matching records; acked emits show their ack paired with them."""
    stack = await stack_factory(layout="namespaces")
    auth = {"token": "dev-token"}
    alpha = await stack.client(namespaces=["/hook"], auth=auth)
    beta = await stack.client(namespaces=["/system"], auth=auth)
    for n in range(3):
        assert (await alpha.call("alpha", {"marker": f"m-a{n}"}, namespace="/hook"))[
            "status"] == "received"
    for n in range(2):
        await beta.call("beta", {"marker": f"m-b{n}"}, namespace="/system")
    await page.goto(stack.ui.url)
    shown = page.locator("#items .row:not([hidden])")
    await expect(page.locator('#items .row[data-kind="sio.event"]', has_text="beta")
                 ).to_have_count(2)

    await page.fill("#f-name", "alpha")
    await page.select_option("#f-dir", "in")
    await expect(shown).to_have_count(3)
    assert set(await shown.locator(".c-n").all_inner_texts()) == {"/hook"}
    await expect(shown.locator(".c-i.acked")).to_have_count(3)

    await page.fill("#f-name", "")
    await page.fill("#f-text", "m-b1")
    await expect(shown).to_have_count(1)
    await expect(shown.locator(".c-e")).to_have_text("beta #2")

    await page.fill("#f-text", "")
    await page.select_option("#f-dir", "")
    await page.select_option("#f-nsp", "/system")
    await page.select_option("#f-kind", "events")
    await expect(shown).to_have_count(4)
    kinds = set(await shown.evaluate_all("rows => rows.map(r => r.dataset.kind)"))
    assert kinds == {"sio.event", "sio.ack"}
    assert set(await shown.locator(".c-n").all_inner_texts()) == {"/system"}
    acks = page.locator('#items .row:not([hidden])[data-kind="sio.ack"]')
    await expect(acks).to_have_count(2)
    await expect(acks.first.locator(".c-i")).to_contain_text("answers #")

    await page.select_option("#f-nsp", "")
    await page.select_option("#f-kind", "")
    await page.locator(f'#conns tr[data-client="{beta.eio.sid}"]').click()
    await expect(page.locator("#f-client")).to_have_value(beta.eio.sid)
    # Clicking a connection filters the stream to that client's records only.
    await page.wait_for_function(
        """sid => { const rows = [...document.querySelectorAll('#items .row:not([hidden])')];
                    return rows.length > 4 && rows.every(r => r.children[2].title === sid); }""",
        arg=beta.eio.sid)
    await expect(shown.filter(has_text="alpha")).to_have_count(0)


async def test_pause_holds_new_events_until_resumed(
        stack_factory: StackFactory, page: Page) -> None:
    """While paused the list does not move and counts what it holds; resume shows it all."""
    stack = await stack_factory()
    await stack.client()
    delivered = stack.count("sio.event", dir="out", name="tool_event")
    await page.goto(stack.ui.url)
    nonce = new_nonce()
    await post_hooks(stack.url, 1, nonce)
    events = page.locator('#items .row[data-kind="sio.event"]', has_text="tool_event")
    await expect(events).to_have_count(1)
    await page.click("#pause")
    await post_hooks(stack.url, 2, nonce, start=1)
    last = await stack.wait_for(lambda rs: delivered(rs) == 3)
    await page.wait_for_function(RECEIVED, arg=last)
    await expect(page.locator("#pause")).to_have_text(re.compile(r"Resume \(\d+ new\)"))
    await expect(events).to_have_count(1)
    await page.click("#pause")
    await expect(events).to_have_count(3)
    await expect(page.locator("#pause")).to_have_text("Pause")


async def test_page_opened_late_gets_recent_history(
        stack_factory: StackFactory, page: Page) -> None:
    """Records from before the page was opened come from the server's ring buffer, oldest
    dropped first when it is full."""
    stack = await stack_factory(history=40)
    await stack.client()
    await post_hooks(stack.url, 30, new_nonce())
    last = await stack.wait_for(
        lambda rs: stack.count("sio.event", dir="out", name="tool_event")(rs) == 30)
    await page.goto(stack.ui.url)
    await page.wait_for_function(RECEIVED, arg=last)
    # Only the last 40 listed records came as history (more may have followed since).
    shown = await page.inner_text("#shown")
    total = int(shown.split(" of ")[1].split()[0])
    assert 40 <= total < last
    await page.locator("#rows").evaluate("el => { el.scrollTop = 0; }")
    first = page.locator("#items .row:not([hidden])").first
    await expect(first).to_have_attribute("data-i", re.compile(r"\d+"))
    assert int(await first.get_attribute("data-i") or 0) > 40
