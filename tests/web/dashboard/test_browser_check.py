"""run_browser_check, diagnose --browser and the dashboard-test command line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, expect

from sio_sniffer.diagnostics import verdict as v
from sio_sniffer.diagnostics.browser import browser_check, run_browser_check
from sio_sniffer.diagnostics.diagnose import diagnose
from sio_sniffer.diagnostics.server import Faults
from sio_sniffer.web.dashboard_page import DashboardPage

Factory = Callable[..., Any]
CLI = [sys.executable, "-m", "sio_sniffer", "dashboard-test"]


async def test_browser_receives_every_hook_event(diag_server: Factory) -> None:
    """Against the seed layout a real browser receives all N hook POSTs, on / only, and the
    result names the namespaces' states."""
    server = await diag_server("namespaces")
    result = await run_browser_check(server.url, ("/", "/hook"), "dev-token", 4)
    assert result.error is None and result.browser and result.browser.startswith("Chromium")
    assert (result.sent, result.accepted, result.received) == (4, 4, 4)
    assert result.by_namespace == {"/": 4, "/hook": 0}
    assert [n.state for n in result.namespaces] == ["connected", "connected"]
    assert "received 4 of 4 events" in result.summary()


async def test_browser_check_fails_when_the_relay_drops_events(diag_server: Factory) -> None:
    """A server that accepts hook POSTs but relays nothing: the browser received 0 of N and the
    check fails with the browser-specific cause."""
    server = await diag_server("claude-mpm", faults=Faults(drop_hook_events=True))
    check = await browser_check(server.url, ("/",), None, 3, 5.0)
    assert check.status == v.FAIL and check.code == "browser_missed_events"
    assert "received 0 of 3 events" in check.observed
    assert check.data["browser"]["namespaces"][0]["state"] == "connected"


async def test_browser_check_fails_when_no_namespace_connects(diag_server: Factory) -> None:
    """A wrong token everywhere: no namespace connects in the browser, the check says so."""
    server = await diag_server("namespaces")
    check = await browser_check(server.url, ("/", "/hook"), {"token": "wrong"}, 2, 5.0)
    assert check.status == v.FAIL and check.code == "browser_no_connect"
    assert "/hook: error 'Invalid authentication token'" in check.observed


async def test_missing_chromium_is_reported_not_raised(diag_server: Factory) -> None:
    """A Chromium path that does not exist gives a result with the reason, not an exception."""
    server = await diag_server("claude-mpm")
    result = await run_browser_check(server.url, ("/",), None, 1,
                                     chromium="/nonexistent/chromium")
    assert result.error is not None and "/nonexistent/chromium" in result.error


async def test_diagnose_browser_includes_the_browser_result(diag_server: Factory) -> None:
    """diagnose(browser=True) runs through its sniffer and appends the browser's check with
    'a real browser ... received N of N events'."""
    server = await diag_server("claude-mpm")
    checks, _, sniffer = await diagnose(server.url, namespaces=("/hook",), events=3,
                                        browser=True)
    browser = next(c for c in checks if c.name == "browser")
    assert browser.status == v.PASS, browser.observed
    assert "a real browser (Chromium" in browser.observed
    assert "received 3 of 3 events" in browser.observed
    assert "/hook: error 'Unable to connect'" in browser.observed
    assert browser.data["browser"]["url"] == sniffer


async def test_cli_serves_the_page_and_prints_what_it_reports(
        diag_server: Factory, browser: Browser) -> None:
    """`dashboard-test URL --nsp /,/hook` prints the page address; opened in Chromium, the
    page's findings are printed line by line; SIGTERM ends it with exit 0."""
    server = await diag_server("claude-mpm")
    proc = await asyncio.create_subprocess_exec(
        *CLI, server.url, "--nsp", "/,/hook", stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert first.startswith("sio-sniffer dashboard-test: open http://127.0.0.1:")
        address = first.split()[3]
        page = await browser.new_page()
        await page.goto(address)
        await expect(page.locator('[data-nsp="/hook"] .error')).to_have_text("Unable to connect")
        wanted = {"/hook: error 'Unable to connect'", "/: connected"}
        while wanted:
            line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
            assert line, "the command ended early"
            wanted = {w for w in wanted if w not in line}
    finally:
        proc.terminate()
        code = await proc.wait()
    assert code == 0


async def test_cli_headless_prints_json_and_exits_zero_when_all_arrive(
        diag_server: Factory) -> None:
    """`dashboard-test URL --headless --events 3 --json` exits 0 with 3 of 3 received."""
    server = await diag_server("claude-mpm")
    proc = await asyncio.create_subprocess_exec(
        *CLI, server.url, "--nsp", "/", "--headless", "--events", "3", "--json",
        stdout=subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    result = json.loads(out)
    assert proc.returncode == 0, result
    assert (result["accepted"], result["received"]) == (3, 3)


@pytest.mark.parametrize(("args", "message"), [
    (["ftp://example"], "is not an http(s) URL"),
    (["http://127.0.0.1:1/hook"], "namespaces go in --nsp"),
    (["http://127.0.0.1:1", "--nsp", "hook"], "must start with '/'"),
    (["http://127.0.0.1:1", "--transports", "polling,xhr"], "transports 'polling,xhr'"),
    (["http://127.0.0.1:1", "--headless", "--events", "0"], "--events must be at least 1"),
])
def test_cli_rejects_bad_input(args: list[str], message: str) -> None:
    """Bad arguments: exit 2 and one clear sentence on stderr, nothing started."""
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr and proc.stdout == ""


async def test_page_server_rejects_bad_reports_and_unknown_files() -> None:
    """POST /results with a non-JSON or malformed body is a 400 naming the problem; only the
    page's own static files are served."""
    page_server = DashboardPage("http://127.0.0.1:1", ("/",))
    await page_server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(page_server.url + "results", data=b"{nope") as resp:
                assert resp.status == 400 and "results are not JSON" in await resp.text()
            async with http.post(page_server.url + "results", json={"page": 1}) as resp:
                assert resp.status == 400 and "page (string)" in await resp.text()
            async with http.get(page_server.url + "static/..%2Fdashboard_test.py") as resp:
                assert resp.status == 404
            async with http.get(page_server.url + "static/sio-client.js") as resp:
                assert resp.status == 200 and "SioSniffer" in await resp.text()
    finally:
        await page_server.stop()
    assert page_server.reports == {}
