"""The dashboard-test page server: a page a real browser opens to act as a dashboard.

The page connects, from the browser and as a dashboard would, to each listed namespace of a
Socket.IO server (directly, or through a running sniffer when pointed there) and shows per
namespace: state, transport and upgrade, sid, connect errors with the server's message, events
with timestamps and payloads, counts, reconnects, and the latency of a test emit with ack. It
uses the server's own ``/socket.io/socket.io.js`` when the server serves one (Node servers do)
and otherwise sio-sniffer's built-in client (``dashboard_static/sio-client.js``); it never loads
anything from the internet. The page reports what it saw back here (``POST /results``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web

from sio_sniffer.model import fingerprint
from sio_sniffer.model.addresses import DEFAULT_SERVER_URL, bind_policy
from sio_sniffer.web.app import host_name, serve_app

STATIC_DIR = Path(__file__).resolve().parent / "dashboard_static"
STATIC_FILES = ("sio-client.js", "dashboard.js", "dashboard.css")
DEFAULT_NAMESPACES = ("/", "/hook", "/system")
TRANSPORTS = ("polling", "websocket")
CLIENTS = ("auto", "builtin")
PING_EVENT = "sio-sniffer:ping"
# Settled namespace states: nothing more happens without a reconnect.
FINAL_STATES = ("connected", "error", "unanswered")
MAX_RESULTS_BODY = 64 * 1024 * 1024  # the page's reports carry event payloads; none is dropped


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
        raise ValueError(f"{url!r} is not an http(s) URL (e.g. {DEFAULT_SERVER_URL})")
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
        # The page hands the --token to the browser: loopback only (the one rule: a page that
        # cannot ask for a token of its own is not served to other machines).
        self.policy = bind_policy(host, "dashboard-test page", "opt-in")
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
        # The config carries the --token: not for a page that reached us under a name that is not
        # loopback (a name pointed at 127.0.0.1 by someone else's page: DNS rebinding).
        if self.policy.admits(host_name(request.host), None) != 200:
            raise web.HTTPForbidden(text="sio-sniffer: the dashboard-test page answers only "
                                         "requests addressed to a loopback name\n")
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
