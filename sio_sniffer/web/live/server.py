"""The live page's server: static files, a WebSocket of records, a token when not on loopback.

Records reach :meth:`LiveUI.sink` on the sniffer's record path, so the sink only updates the
view state and queues the record; encoding happens in a callback ~50 ms later, once per record
for every page. Each page has its own bounded queue and writer task: a page that reads slowly
loses its oldest queued records (and is told how many), it never slows the sniffer or the other
pages. A ring buffer of recent encoded records lets a page opened late start with history.

Static files are read once at construction into a name -> bytes table; a request can only ever
name an entry of that table, so no request path reaches the file system.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson
from aiohttp import WSMsgType, web

from sio_sniffer.model import Record
from sio_sniffer.model.addresses import bind_policy
from sio_sniffer.web.app import host_name, serve_app
from sio_sniffer.web.live.state import UNLISTED, Note, ViewState
from sio_sniffer.web.metrics import HealthReport, health_handler

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                 ".svg": "image/svg+xml", ".png": "image/png"}
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
FLUSH_DELAY = 0.05
SNAPSHOT_EVERY = 0.5
CHUNK = 5000  # records per WebSocket message
MAX_HEX = 4096  # bytes of a binary argument shown as hex


class UIError(Exception):
    """The page could not be served (the message is one sentence for the terminal)."""


class AnalysisSummary(Protocol):
    def summary(self) -> Mapping[str, Any]: ...


def _default(obj: Any) -> Any:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        return {"$bytes": len(data), "hex": data[:MAX_HEX].hex()}
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    return repr(obj)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)


def load_static(directory: Path = STATIC_DIR) -> dict[str, tuple[bytes, str]]:
    """Every regular file directly in ``directory``: name -> (content, content type)."""
    files: dict[str, tuple[bytes, str]] = {}
    for path in sorted(directory.iterdir()):
        if path.is_file() and path.suffix in CONTENT_TYPES:
            files[path.name] = (path.read_bytes(), CONTENT_TYPES[path.suffix])
    return files


class _Page:
    """One open page: its WebSocket, bounded queue and the latest snapshot not yet sent."""

    __slots__ = ("dropped", "queue", "snapshot", "wake", "ws")

    def __init__(self, ws: web.WebSocketResponse, size: int) -> None:
        self.ws = ws
        self.queue: deque[bytes] = deque(maxlen=size)
        self.dropped = 0
        self.snapshot: bytes | None = None
        self.wake = asyncio.Event()

    def put(self, item: bytes) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(item)


class LiveUI:
    """``LiveUI(host, port, token=None)``; ``await start()``, ``url``, ``sink``, ``await stop()``.

    A token is required whenever ``token`` is given or ``host`` is not loopback (one is made up
    then, see ``url``). ``mode="offline"`` shows loaded files: rates use the records' clock.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, token: str | None = None, *,
                 mode: str = "live", title: str = "sio-sniffer", history: int = 50_000,
                 page_queue: int = 20_000, page_buffer: int = 100_000,
                 max_args: int = 16_384, flush_delay: float = FLUSH_DELAY,
                 clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.port = port
        self.policy = bind_policy(host, "live page", "token", token=token)
        self.token = self.policy.token
        self.mode = mode
        self.title = title
        self.max_args = max_args
        self.flush_delay = flush_delay
        self.page_queue = page_queue
        self.page_buffer = page_buffer
        self.state = ViewState(clock, live=mode == "live")
        self.static = load_static()
        self._new: deque[tuple[int, Record, Note]] = deque(maxlen=history)
        self._ring: deque[bytes] = deque(maxlen=history)
        self._unsent = 0  # records pushed out of ``_new`` by a burst before they were encoded
        self._seq = 0
        self._pages: set[_Page] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_handle: asyncio.Handle | None = None
        self._snapshot_task: asyncio.Task[None] | None = None
        self._snapshot_version = -1
        self._runner: web.AppRunner | None = None
        self._cookie = f"sio_sniffer_token_{port}"
        self.bound: list[tuple[str, int]] = []
        self.app = self.make_app()

    def sink(self, record: Record) -> None:
        """Sniffer sink: update the view state and queue the record for the pages."""
        self._seq += 1
        note = self.state.feed(record, self._seq)
        if record.event in UNLISTED:
            return
        if len(self._new) == self._new.maxlen:
            self._unsent += 1
        self._new.append((self._seq, record, note))
        if self._loop is not None and self._flush_handle is None:
            self._flush_handle = self._loop.call_later(self.flush_delay, self._flush)

    def use_analysis(self, analyzer: AnalysisSummary | None) -> None:
        """Show the analysis' live latency figures (relay in -> out) in the stats."""
        self.state.summary_source = analyzer.summary if analyzer is not None else None

    def encode(self, seq: int, record: Record, note: Note) -> bytes:
        """One record as the page reads it (``args`` cut to ``max_args`` bytes of JSON)."""
        item: dict[str, Any] = {"i": seq, "ts": record.ts, "kind": record.event}
        if note.client is not None:
            item["client"] = note.client
        for key in ("dir", "nsp", "name", "ack_id", "size", "transport", "sio_sid", "conn"):
            value = getattr(record, key)
            if value is not None:
                item[key] = value
        if note.pair is not None:
            item["pair"] = note.pair
            item["ms"] = note.ms
        if record.extra:
            item["extra"] = record.extra
        head = _dumps(item)
        if record.args is None:
            return head
        args = _dumps(record.args)
        if len(args) > self.max_args:
            args = _dumps({"$cut": len(args),
                           "text": args[: self.max_args].decode("utf-8", "replace")})
        return head[:-1] + b',"args":' + args + b"}"

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._new:
            return
        encoded = [self.encode(seq, rec, note) for seq, rec, note in self._new]
        self._new.clear()
        self._ring.extend(encoded)
        unsent, self._unsent = self._unsent, 0
        for page in self._pages:
            page.dropped += unsent
            for item in encoded:
                page.put(item)
            page.wake.set()

    @property
    def records(self) -> int:
        """How many records the sink has been given."""
        return self._seq

    @property
    def url(self) -> str:
        """Where to open the page (with ``?token=`` when one is required)."""
        host, port = self.bound[0] if self.bound else (self.host, self.port)
        if host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        shown = f"[{host}]" if ":" in host else host
        query = f"?token={self.token}" if self.token else ""
        return f"http://{shown}:{port}/{query}"

    def serve_health(self, report: HealthReport) -> None:
        """Answer ``GET /healthz`` too (before ``start``)."""
        self.app.router.add_get("/healthz", health_handler(report))

    def make_app(self) -> web.Application:
        """The aiohttp application (mountable elsewhere; ``start`` runs it on its own)."""
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/ws", self._websocket)
        return app

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            runner, _ = await serve_app(self.app, self.host, self.port, shutdown_timeout=0.5)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UIError(f"cannot serve the live page on {self.host}:{self.port}: the port "
                              "is in use (pick another with --ui HOST:PORT)") from None
            raise UIError(f"cannot serve the live page on {self.host}:{self.port}: "
                          f"{exc.strerror or exc}") from None
        self._runner = runner
        self.bound = [(str(a[0]), int(a[1])) for a in runner.addresses]
        self.port = self.bound[0][1]
        self._cookie = f"sio_sniffer_token_{self.port}"
        self._flush()
        self._snapshot_task = asyncio.create_task(self._snapshots())

    async def stop(self) -> None:
        if self._snapshot_task is not None:
            self._snapshot_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._snapshot_task
            self._snapshot_task = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for page in list(self._pages):
            with contextlib.suppress(Exception):
                await page.ws.close(code=1001, message=b"sniffer stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._loop = None

    @web.middleware
    async def _guard(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        given = request.query.get("token")
        offered = given if given is not None else request.cookies.get(self._cookie)
        status = self.policy.admits(host_name(request.host), offered)
        if status == 403:
            # Without a token only loopback names are answered: a web page that points a name
            # it controls at 127.0.0.1 (DNS rebinding) would otherwise read the traffic.
            return web.Response(status=403, text="this page answers to loopback addresses only")
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            return web.Response(status=403, text="cross-origin requests are refused")
        if status == 401:
            return web.Response(status=401, text="a token is required: open the URL "
                                "sio-sniffer printed at start (it ends in ?token=...)")
        response = await handler(request)
        if self.token is not None and given is not None and not response.prepared:
            response.set_cookie(self._cookie, self.token, httponly=True, samesite="Strict",
                                path="/")
        return response

    def _file(self, name: str) -> web.Response:
        entry = self.static.get(name)
        if entry is None:
            raise web.HTTPNotFound(text="not found")
        body, content_type = entry
        return web.Response(body=body, content_type=content_type, charset="utf-8",
                            headers=SECURITY_HEADERS)

    async def _index(self, request: web.Request) -> web.Response:
        return self._file("index.html")

    async def _static(self, request: web.Request) -> web.Response:
        return self._file(request.match_info["name"])

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=65536, heartbeat=30.0)
        await ws.prepare(request)
        self._flush()
        page = _Page(ws, self.page_queue)
        history = list(self._ring)
        self._pages.add(page)
        writer = asyncio.create_task(self._write(page, history))
        try:
            async for message in ws:
                if message.type == WSMsgType.ERROR:
                    break
        finally:
            self._pages.discard(page)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await writer
        return ws

    async def _write(self, page: _Page, history: list[bytes]) -> None:
        ws = page.ws
        hello = {"t": "hello", "mode": self.mode, "title": self.title,
                 "buffer": self.page_buffer, "seq": self._seq}
        try:
            await ws.send_str(_dumps(hello).decode())
            await ws.send_str(self._snapshot_message().decode())
            for start in range(0, len(history), CHUNK):
                await ws.send_str(_records(history[start:start + CHUNK], 0))
            while not ws.closed:
                await page.wake.wait()
                page.wake.clear()
                while page.queue:
                    batch = [page.queue.popleft()
                             for _ in range(min(CHUNK, len(page.queue)))]
                    dropped, page.dropped = page.dropped, 0
                    await ws.send_str(_records(batch, dropped))
                if page.snapshot is not None:
                    snapshot, page.snapshot = page.snapshot, None
                    await ws.send_str(snapshot.decode())
        except (ConnectionError, RuntimeError):
            # The page went away mid-send; the reader side ends the handler.
            return

    def _snapshot_message(self) -> bytes:
        return _dumps({"t": "state", **self.state.snapshot()})

    async def _snapshots(self) -> None:
        """Send the panels' snapshot when something changed (and, live, as rates move)."""
        sent_at = 0.0
        while True:
            await asyncio.sleep(SNAPSHOT_EVERY)
            if not self._pages:
                continue
            now = time.monotonic()
            changed = self.state.version != self._snapshot_version
            if not changed and (self.mode != "live" or now - sent_at < 1.0):
                continue
            self._snapshot_version = self.state.version
            sent_at = now
            message = self._snapshot_message()
            for page in self._pages:
                page.snapshot = message
                page.wake.set()


def _records(items: list[bytes], dropped: int) -> str:
    head = b'{"t":"records","dropped":%d,"items":[' % dropped
    return (head + b",".join(items) + b"]}").decode()
