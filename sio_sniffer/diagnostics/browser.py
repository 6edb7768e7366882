"""`diagnose --browser`: does a real browser receive the events?

:func:`run_browser_check` drives a headless Chromium through the dashboard-test page
(:mod:`sio_sniffer.web.dashboard_page`) while hook events are POSTed to the server, which is how
``diagnose --browser`` says "a real browser received N of N".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp

from sio_sniffer.diagnostics import verdict as v
from sio_sniffer.diagnostics.clients import (
    HookBody,
    find_probe,
    hook_body,
    new_nonce,
    percentile,
)
from sio_sniffer.diagnostics.server import INGEST_PATH
from sio_sniffer.diagnostics.verdict import Cause, Check, as_text
from sio_sniffer.web.dashboard_page import (
    TRANSPORTS,
    DashboardPage,
    NamespaceView,
    PageEvent,
    PageReport,
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run")
HOOK_WAIT = 3.0  # how long hook events may take to reach the browser

BROWSER_NO_CONNECT = Cause(
    "browser_no_connect",
    "A real browser could not connect to any namespace: the server refuses cross-origin "
    "requests from a page (CORS), the browser cannot reach that address, or every namespace "
    "was refused",
    "Allow the dashboard's origin on the server (python-socketio: "
    "AsyncServer(cors_allowed_origins='*' or the dashboard's origin); socket.io: "
    "new Server(http, {cors: {origin: ...}})) and read the namespace errors above")
BROWSER_MISSED = Cause(
    "browser_missed_events",
    "The server accepted the hook events but a real browser did not receive them all: the "
    "relay does not reach browser clients (rooms, namespaces, a transport the browser uses), "
    "or the connection dropped",
    "Compare with the Python dashboard client above; open `sio-sniffer dashboard-test` in the "
    "browser the dashboard runs in and watch the namespaces' events and disconnects")


@dataclass
class BrowserResult:
    """What a headless Chromium saw of a server while hook events were sent to it."""

    url: str
    browser: str | None = None
    client: str | None = None
    namespaces: list[NamespaceView] = field(default_factory=list)
    sent: int = 0
    accepted: int = 0
    received: int = 0
    by_namespace: dict[str, int] = field(default_factory=dict)
    latency_ms: dict[str, float] = field(default_factory=dict)
    post_errors: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def connected(self) -> list[str]:
        return [n.nsp for n in self.namespaces if n.state == "connected"]

    def summary(self) -> str:
        """One sentence: 'a real browser (...) received N of N events'."""
        if self.error is not None:
            return self.error
        who = ", ".join(x for x in (self.browser, {"builtin": "sio-sniffer's client",
                                                   "server": "the server's socket.io.js"}
                                    .get(self.client or "")) if x)
        head = f"a real browser ({who})" if who else "a real browser"
        if not self.connected:
            return f"{head} connected to no namespace"
        if not self.accepted:
            return (f"{head} connected; the server accepted none of {self.sent} hook "
                    f"event(s) ({'; '.join(self.post_errors[:2])})")
        text = f"{head} received {self.received} of {self.accepted} events"
        if self.accepted < self.sent:
            text += f" ({self.sent - self.accepted} hook POST(s) failed)"
        if self.latency_ms:
            text += (f", latency p50 {self.latency_ms['p50']:.1f} ms, max "
                     f"{self.latency_ms['max']:.1f} ms")
        return text

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}


async def _post_hooks(url: str, count: int, nonce: str, result: BrowserResult,
                      body: HookBody) -> dict[int, float]:
    """POST ``count`` hook events like claude-mpm's hook; returns seq -> wall-clock send time."""
    sent_at: dict[int, float] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as http:
        for seq in range(count):
            sent_at[seq] = time.time() * 1000
            result.sent += 1
            try:
                async with http.post(url + INGEST_PATH, json=body(seq, nonce)) as resp:
                    if 200 <= resp.status < 300:
                        result.accepted += 1
                    else:
                        text = as_text(await resp.text())
                        result.post_errors.append(f"HTTP {resp.status}" +
                                                  (f": {text}" if text else ""))
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                result.post_errors.append(repr(exc))
    return sent_at


def _probes(report: PageReport, nonce: str) -> dict[int, PageEvent]:
    """The first arrival of each probe event, by seq."""
    first: dict[int, PageEvent] = {}
    for event in report.events:
        seq = find_probe(event.args, nonce)
        if seq is not None and seq not in first:
            first[seq] = event
    return first


async def run_browser_check(url: str, nsp: Sequence[str] = ("/",), token: str | None = None,
                            events: int = 5, *, transports: Sequence[str] = TRANSPORTS,
                            client: str = "auto", timeout: float = 10.0,
                            chromium: str = CHROMIUM,
                            hook_wait: float = HOOK_WAIT,
                            body: HookBody = hook_body) -> BrowserResult:
    """Open the dashboard test page in headless Chromium against ``url``, POST ``events`` hook
    events to ``url``/api/events once the namespaces settled, and count what the browser got."""
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    result = BrowserResult(url)
    page_server = DashboardPage(url, nsp, auth={"token": token} if token else None,
                                transports=transports, client=client,
                                connect_timeout=timeout)
    await page_server.start()
    try:
        async with async_playwright() as pw:
            try:
                browser = await pw.chromium.launch(executable_path=chromium,
                                                   args=list(CHROMIUM_ARGS))
            except PlaywrightError as exc:
                result.error = (f"could not start Chromium ({chromium}): "
                                f"{str(exc).strip().splitlines()[0]}")
                return result
            try:
                result.browser = f"Chromium {browser.version}"
                page = await browser.new_page()
                await page.goto(page_server.url)
                await _observe(page_server, result, events, timeout, hook_wait, body)
            finally:
                await browser.close()
    finally:
        await page_server.stop()
    return result


async def _observe(page_server: DashboardPage, result: BrowserResult, events: int,
                   timeout: float, hook_wait: float, body: HookBody) -> None:
    """Wait for the page's namespaces to settle, send the hook events, collect the arrivals."""
    try:
        report = await page_server.wait_for(lambda r: r.settled(page_server.namespaces),
                                            timeout + 2)
    except asyncio.TimeoutError:
        latest = page_server.latest()
        if latest is None:
            result.error = "the dashboard test page never reported back"
            return
        report = latest
    if any(view.state == "connected" for view in report.namespaces.values()):
        nonce = new_nonce()
        sent_at = await _post_hooks(result.url, events, nonce, result, body)
        if result.accepted:
            with contextlib.suppress(asyncio.TimeoutError):
                await page_server.wait_for(
                    lambda r: len(_probes(r, nonce)) >= result.accepted, hook_wait)
        report = page_server.latest() or report
        arrived = _probes(report, nonce)
        result.received = len(arrived)
        for name in page_server.namespaces:
            result.by_namespace[name] = len(
                {find_probe(e.args, nonce) for e in report.events if e.nsp == name} - {None})
        latencies = [e.t - sent_at[seq] for seq, e in arrived.items()]
        if latencies:
            result.latency_ms = {"p50": round(percentile(latencies, 50), 1),
                                 "max": round(max(latencies), 1)}
    result.client = report.client
    result.namespaces = [report.namespaces[n] for n in page_server.namespaces
                         if n in report.namespaces]


async def browser_check(url: str, namespaces: Sequence[str], auth: Any, events: int,
                        timeout: float, body: HookBody = hook_body) -> Check:
    """``diagnose --browser``: the browser's result as one check."""
    token = auth.get("token") if isinstance(auth, dict) else None
    result = await run_browser_check(url, namespaces, token if isinstance(token, str) else None,
                                     events, timeout=timeout, body=body)
    detail = "; ".join(view.line() for view in result.namespaces)
    seen = result.summary() + (f" — {detail}" if detail else "")
    data = {"browser": result.to_dict()}
    if result.error is not None:
        return Check("browser", v.SKIP, seen, data=data)
    if not result.connected:
        return Check("browser", v.FAIL, seen, BROWSER_NO_CONNECT.cause, BROWSER_NO_CONNECT.fix,
                     BROWSER_NO_CONNECT.code, data)
    if not result.accepted:
        return Check("browser", v.SKIP, seen, data=data)
    if result.received < result.accepted:
        return Check("browser", v.FAIL, seen, BROWSER_MISSED.cause, BROWSER_MISSED.fix,
                     BROWSER_MISSED.code, data)
    return Check("browser", v.PASS, seen, data=data)
