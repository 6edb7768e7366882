"""`sio-sniffer dashboard-test`: does a real browser receive the events?

Serves a page on a loopback port that connects, from the browser and as a dashboard would, to
each listed namespace of a Socket.IO server (directly, or through a running sniffer when pointed
there) and shows per namespace: state, transport and upgrade, sid, connect errors with the
server's message, events with timestamps and payloads, counts, reconnects, and the latency of a
test emit with ack. The page uses the server's own ``/socket.io/socket.io.js`` when the server
serves one (Node servers do) and otherwise sio-sniffer's built-in client
(``dashboard_static/sio-client.js``); it never loads anything from the internet.

The page reports what it saw back to the page server (``POST /results``).
:func:`run_browser_check` drives a headless Chromium through the page while hook events are
POSTed to the server, which is how ``diagnose --browser`` says "a real browser received N of N".
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import web

from sio_sniffer.diagnostics import verdict as v
from sio_sniffer.diagnostics.clients import find_probe, hook_body, new_nonce, percentile
from sio_sniffer.diagnostics.server import INGEST_PATH
from sio_sniffer.diagnostics.verdict import Cause, Check
from sio_sniffer.model import fingerprint
from sio_sniffer.web.app import serve_app

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "dashboard_static"
STATIC_FILES = ("sio-client.js", "dashboard.js", "dashboard.css")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run")
DEFAULT_URL = "http://localhost:8765"
DEFAULT_NAMESPACES = ("/", "/hook", "/system")
TRANSPORTS = ("polling", "websocket")
CLIENTS = ("auto", "builtin")
PING_EVENT = "sio-sniffer:ping"
# Settled namespace states: nothing more happens without a reconnect.
FINAL_STATES = ("connected", "error", "unanswered")
HOOK_WAIT = 3.0  # how long hook events may take to reach the browser
MAX_RESULTS_BODY = 64 * 1024 * 1024  # the page's reports carry event payloads; none is dropped

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


def parse_namespaces(values: Sequence[str]) -> tuple[str, ...]:
    """``["/,/hook", "/system"]`` -> ``("/", "/hook", "/system")``; ``ValueError`` if bad."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            nsp = part.strip()
            if not nsp:
                continue
            if not nsp.startswith("/") or any(c in nsp for c in "?#, "):
                raise ValueError(f"namespace {nsp!r} must start with '/' (e.g. /hook)")
            if nsp not in out:
                out.append(nsp)
    if not out:
        raise ValueError("no namespace given (e.g. --nsp /,/hook,/system)")
    return tuple(out)


def parse_transports(value: str) -> tuple[str, ...]:
    """``"polling,websocket"`` -> ``("polling", "websocket")``; the first one opens the session."""
    out = tuple(t.strip() for t in value.split(",") if t.strip())
    bad = [t for t in out if t not in TRANSPORTS]
    if bad or not out or len(set(out)) != len(out):
        raise ValueError(f"transports {value!r}: use polling, websocket or polling,websocket")
    return out


def check_url(url: str) -> str:
    """The server URL without a trailing slash; ``ValueError`` when it is not http(s)://host."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL (e.g. {DEFAULT_URL})")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError(f"{url!r}: give the server's address only; namespaces go in --nsp")
    return url.rstrip("/")


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


@dataclass
class NamespaceView:
    """What the page shows for one namespace."""

    nsp: str
    state: str
    transport: str | None = None
    upgraded: bool = False
    sid: str | None = None
    error: str | None = None
    errors: list[str] = field(default_factory=list)
    connects: int = 0
    reconnects: int = 0
    reconnect_attempts: int = 0
    disconnects: list[str] = field(default_factory=list)
    events: int = 0
    ack_status: str = "not sent"
    ack_ms: float | None = None

    @classmethod
    def from_report(cls, data: dict[str, Any]) -> NamespaceView:
        ack = data.get("ack") if isinstance(data.get("ack"), dict) else {}
        assert isinstance(ack, dict)
        return cls(
            nsp=_str(data.get("nsp")) or "?", state=_str(data.get("state")) or "?",
            transport=_str(data.get("transport")), upgraded=data.get("upgraded") is True,
            sid=_str(data.get("sid")), error=_str(data.get("error")),
            errors=[str(e.get("message")) for e in data.get("errors") or []
                    if isinstance(e, dict)],
            connects=_int(data.get("connects")), reconnects=_int(data.get("reconnects")),
            reconnect_attempts=_int(data.get("reconnect_attempts")),
            disconnects=[str(d.get("reason")) for d in data.get("disconnects") or []
                         if isinstance(d, dict)],
            events=_int(data.get("events")), ack_status=_str(ack.get("status")) or "not sent",
            ack_ms=_num(ack.get("ms")))

    def line(self) -> str:
        """One line: ``/hook: error 'Unable to connect'`` or ``/: connected over websocket ...``."""
        if self.state != "connected":
            return f"{self.nsp}: {self.state}" + (f" {self.error!r}" if self.error else "")
        how = f"over {self.transport}" + (" (upgraded)" if self.upgraded else "")
        ack = (f", test emit acked in {self.ack_ms:.1f} ms" if self.ack_ms is not None
               else f", test emit: {self.ack_status}")
        again = f", {self.reconnects} reconnect(s)" if self.reconnects else ""
        return f"{self.nsp}: connected {how}, sid {self.sid}{ack}{again}"


@dataclass(frozen=True, slots=True)
class PageEvent:
    """One event the browser received: its namespace, name, arguments and arrival time."""

    seq: int
    nsp: str
    name: str
    args: list[Any]
    t: float  # the browser's clock, ms since the epoch
    ts: str


@dataclass
class PageReport:
    """Everything one loaded page has reported so far."""

    page: str
    client: str | None = None
    user_agent: str | None = None
    namespaces: dict[str, NamespaceView] = field(default_factory=dict)
    events: list[PageEvent] = field(default_factory=list)
    last_seq: int = 0
    reports: int = 0

    def settled(self, expected: Sequence[str]) -> bool:
        """Every expected namespace is connected, refused or given up on."""
        return all(nsp in self.namespaces and self.namespaces[nsp].state in FINAL_STATES
                   for nsp in expected)


class DashboardPage:
    """The page server: ``await page.start()``, open ``page.url`` in a browser, read
    ``page.reports`` or ``await page.wait_for(predicate, timeout)``; ``await page.stop()``."""

    def __init__(self, target: str, namespaces: Sequence[str] = ("/",), *,
                 auth: dict[str, Any] | None = None,
                 transports: Sequence[str] = TRANSPORTS, client: str = "auto",
                 path: str = "/socket.io/", host: str = "127.0.0.1", port: int = 0,
                 connect_timeout: float = 10.0, ack_timeout: float = 5.0,
                 on_report: Callable[[PageReport, list[PageEvent]], None] | None = None) -> None:
        if client not in CLIENTS:
            raise ValueError(f"client {client!r}: choose one of {', '.join(CLIENTS)}")
        self.target = target
        self.namespaces = tuple(dict.fromkeys(namespaces))
        self.host = host
        self.port = port
        self.reports: dict[str, PageReport] = {}
        self._on_report = on_report
        self._changed = asyncio.Condition()
        self._config = {
            "url": target, "namespaces": list(self.namespaces), "auth": auth,
            "auth_fingerprint": None if auth is None else fingerprint(auth),
            "transports": list(transports), "client": client,
            "path": "/" + path.strip("/") + "/", "connect_timeout_ms": int(connect_timeout * 1000),
            "ack_timeout_ms": int(ack_timeout * 1000), "ping_event": PING_EVENT,
            "script_timeout_ms": 3000}
        self.app = web.Application(client_max_size=MAX_RESULTS_BODY)
        self.app.router.add_get("/", self._index)
        self.app.router.add_get("/config.json", self._config_json)
        self.app.router.add_get("/static/{name}", self._static)
        self.app.router.add_post("/results", self._post_results)
        self.app.router.add_get("/results", self._get_results)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        """Listen; raises ``OSError`` when the port is taken."""
        self._runner, self.port = await serve_app(self.app, self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def latest(self) -> PageReport | None:
        """The report of the page that reported last (usually the only one)."""
        return max(self.reports.values(), key=lambda r: r.reports, default=None)

    async def wait_for(self, predicate: Callable[[PageReport], bool],
                       timeout: float) -> PageReport:
        """The first report (of any page) satisfying ``predicate``; ``TimeoutError`` otherwise."""
        def found() -> PageReport | None:
            return next((r for r in self.reports.values() if predicate(r)), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
        report = found()
        assert report is not None
        return report

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / "index.html",
                                headers={"Cache-Control": "no-store"})

    async def _config_json(self, request: web.Request) -> web.Response:
        return web.json_response(self._config, headers={"Cache-Control": "no-store"})

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in STATIC_FILES:
            raise web.HTTPNotFound(text=f"no such file: {name}")
        return web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-store"})

    async def _post_results(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            raise web.HTTPBadRequest(text=f"results are not JSON: {exc}") from exc
        if not isinstance(body, dict) or not isinstance(body.get("page"), str) \
                or not isinstance(body.get("namespaces"), list) \
                or not isinstance(body.get("events"), list):
            raise web.HTTPBadRequest(text="results need page (string), namespaces (list) and "
                                          "events (list)")
        page_id = body["page"]
        report = self.reports.get(page_id) or PageReport(page_id)
        self.reports[page_id] = report
        report.client = _str(body.get("client"))
        report.user_agent = _str(body.get("user_agent"))
        report.reports = max((r.reports for r in self.reports.values()), default=0) + 1
        for item in body["namespaces"]:
            if isinstance(item, dict):
                view = NamespaceView.from_report(item)
                report.namespaces[view.nsp] = view
        new: list[PageEvent] = []
        for item in body["events"]:
            seq = _int(item.get("seq")) if isinstance(item, dict) else 0
            if seq <= report.last_seq:
                continue  # a repeat of a report whose answer the page did not get
            assert isinstance(item, dict)
            args = item.get("args")
            event = PageEvent(seq, str(item.get("nsp")), str(item.get("name")),
                              args if isinstance(args, list) else [args],
                              _num(item.get("t")) or 0.0, str(item.get("ts")))
            report.events.append(event)
            report.last_seq = seq
            new.append(event)
        if self._on_report is not None:
            self._on_report(report, new)
        async with self._changed:
            self._changed.notify_all()
        return web.json_response({"stored": report.last_seq})

    async def _get_results(self, request: web.Request) -> web.Response:
        return web.json_response(
            {page: asdict(report) for page, report in self.reports.items()},
            dumps=lambda obj: orjson.dumps(obj).decode())


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


async def _post_hooks(url: str, count: int, nonce: str, result: BrowserResult) -> dict[int, float]:
    """POST ``count`` hook events like claude-mpm's hook; returns seq -> wall-clock send time."""
    sent_at: dict[int, float] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as http:
        for seq in range(count):
            sent_at[seq] = time.time() * 1000
            result.sent += 1
            try:
                async with http.post(url + INGEST_PATH, json=hook_body(seq, nonce)) as resp:
                    if 200 <= resp.status < 300:
                        result.accepted += 1
                    else:
                        text = (await resp.text()).strip()[:100]
                        result.post_errors.append(f"HTTP {resp.status}" +
                                                  (f" {text!r}" if text else ""))
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
                            hook_wait: float = HOOK_WAIT) -> BrowserResult:
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
                await _observe(page_server, result, events, timeout, hook_wait)
            finally:
                await browser.close()
    finally:
        await page_server.stop()
    return result


async def _observe(page_server: DashboardPage, result: BrowserResult, events: int,
                   timeout: float, hook_wait: float) -> None:
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
        sent_at = await _post_hooks(result.url, events, nonce, result)
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
                        timeout: float) -> Check:
    """``diagnose --browser``: the browser's result as one check."""
    token = auth.get("token") if isinstance(auth, dict) else None
    result = await run_browser_check(url, namespaces, token if isinstance(token, str) else None,
                                     events, timeout=timeout)
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
