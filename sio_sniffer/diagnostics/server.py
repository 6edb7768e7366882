"""`sio-sniffer serve`: a diagnostic Socket.IO server that says what it did with every packet.

Two layouts:

- ``claude-mpm``: the claude-mpm monitor as it is today (6.x, see shared/context/claude-mpm.md).
  Namespace ``/`` only, no rooms, no auth. ``POST /api/events`` is answered 204, its nested hook
  event unwrapped and broadcast to every client under a categorized event name. A client that
  emits ``claude_event`` has it re-broadcast to everyone, sender included, as ``hook:event`` and
  ``claude_event``. New clients get ``dashboard:welcome``; everyone gets
  ``dashboard:client:count`` on each connect and disconnect; ``heartbeat`` every 180 s.
- ``namespaces``: the picture of the seed document (claude-mpm's own old diagnostic server):
  ``/``, ``/hook``, ``/system``, ``/session``, ``/claude``, ``/agent``, ``/todo``, ``/memory``,
  ``/log``; each client joins ``<ns>_room`` (``root_room`` for ``/``); the CONNECT must carry
  ``{"token": ...}`` equal to the server's token (``dev-token`` unless told otherwise). An event a
  client emits on a namespace is relayed to the others in that namespace's room and to the
  dashboards in ``root_room`` on ``/``; hook POSTs go to ``root_room`` as in the other layout.

Both layouts serve ``GET /health`` (JSON) and ``GET /`` (a small page), and report every
connection, auth attempt (the token only as a ``sha256:`` fingerprint), event in, emit and
broadcast as a :class:`~sio_sniffer.model.Record` to the sinks, the same records the proxy logs.
"""

from __future__ import annotations

import asyncio
import html
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from typing import Any

import socketio
from aiohttp import web

from sio_sniffer import model
from sio_sniffer.model import Record, fingerprint
from sio_sniffer.web.app import serve_app

Sink = Callable[[Record], None]

LAYOUTS = ("claude-mpm", "namespaces")
SEED_NAMESPACES = ("/", "/hook", "/system", "/session", "/claude", "/agent", "/todo", "/memory",
                   "/log")
DEFAULT_TOKEN = "dev-token"
TOKEN_ENV = "CLAUDE_MPM_SOCKETIO_TOKEN"
INGEST_PATH = "/api/events"
HEALTH_PATH = "/health"
SERVICE_NAME = "sio-sniffer-diagnostic"  # never "claude"/"mpm": claude-mpm would adopt us

# claude-mpm's monitor settings: AsyncServer(ping_interval=30, ping_timeout=60).
CLAUDE_MPM_PING_INTERVAL = 30.0
CLAUDE_MPM_PING_TIMEOUT = 60.0
HEARTBEAT_EVERY = 180.0
# The fault ``ping_times_out``: the server advertises pingInterval 1000 ms + pingTimeout 200 ms
# but pings every 1500 ms (python-engineio advertises interval + grace, and a negative grace
# makes the promise shorter than the schedule), as a blocked loop or a buffering hop would. A
# client expects a ping within 1.2 s and gives up ("ping timeout") before the first one comes.
TIMING_OUT_PING: tuple[tuple[float, float], float] = ((1.5, -0.5), 0.2)

# The dashboard's event names by hook subtype, then by event type; the rest go as claude_event.
_NAME_BY_SUBTYPE = {
    "pre_tool": "tool_event",
    "post_tool": "tool_event",
    "subagent_start": "hook_event",
    "subagent_stop": "hook_event",
    "todo_updated": "hook_event",
}
_NAME_BY_TYPE = {
    "session": "session_event",
    "response": "response_event",
    "agent": "agent_event",
    "file": "file_event",
    "system": "system_event",
}
# What claude-mpm's dashboard subscribes to; anything else is delivered and silently ignored.
DASHBOARD_EVENTS = ("claude_event", "hook_event", "tool_event", "cli_event", "system_event",
                    "agent_event", "build_event", "session_event", "response_event",
                    "file_event", "event_history", "heartbeat", "reload", "config_event")


def event_name_for(event_type: Any, subtype: Any) -> str:
    """The name claude-mpm's monitor broadcasts a hook event under."""
    return (_NAME_BY_SUBTYPE.get(str(subtype)) or _NAME_BY_TYPE.get(str(event_type))
            or "claude_event")


def room_for(namespace: str) -> str:
    """The room every client of ``namespace`` joins in the namespaces layout."""
    return f"{namespace.strip('/') or 'root'}_room"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Faults:
    """Deliberate breakage, one knob per real failure mode (all off by default).

    - ``reject_namespaces``: register ``/`` only; every other namespace gets CONNECT_ERROR
      "Unable to connect" (a client on ``/hook``/``/system`` against a server without them).
    - ``ignore_auth_connect``: a CONNECT that carries an auth payload is never answered; the
      connect handler raises ``TypeError`` exactly as claude-mpm's (which takes no ``auth``).
      Without auth the connect works.
    - ``drop_hook_events``: hook events (POST or emitted) are accepted (204 / ack) and relayed
      to nobody.
    - ``polling_only``: Engine.IO transports ``["polling"]`` and no upgrades: the handshake
      offers none, WebSocket requests are refused with 400.
    - ``ping_times_out``: advertise pingInterval 1000 ms + pingTimeout 200 ms but ping every
      1500 ms (``TIMING_OUT_PING``): clients drop the connection with a ping timeout about 1.2 s
      after connecting.
    - ``hook_status``: answer hook POSTs with this status (e.g. 500) and relay nothing.
    - ``slow_ingest_ms``: wait this long before handling a hook POST (the bash fast-hook gives up
      after 300 ms, the Python hook after 2 s).
    - ``wrong_event_name``: relay under this name (e.g. ``mpm_event``) instead of the right one.
    - ``drop_correlation_id``: strip ``correlation_id`` from relayed payloads.
    - ``emit_twice``: every relay is emitted twice (two relay paths).
    - ``relay_room``: relay to this room, which nobody joins, instead of the normal recipients.
    """

    reject_namespaces: bool = False
    ignore_auth_connect: bool = False
    drop_hook_events: bool = False
    polling_only: bool = False
    ping_times_out: bool = False
    hook_status: int | None = None
    slow_ingest_ms: int = 0
    wrong_event_name: str | None = None
    drop_correlation_id: bool = False
    emit_twice: bool = False
    relay_room: str | None = None

    def active(self) -> list[str]:
        """The names of the knobs that are set (for the startup notice)."""
        default = Faults()
        return [f.name for f in fields(self) if getattr(self, f.name) != getattr(default, f.name)]


# `serve --fault NAME`: the same knobs from the command line, with the typical values.
FAULT_PRESETS: dict[str, Faults] = {
    "reject-namespaces": Faults(reject_namespaces=True),
    "ignore-auth-connect": Faults(ignore_auth_connect=True),
    "drop-hook-events": Faults(drop_hook_events=True),
    "polling-only": Faults(polling_only=True),
    "ping-times-out": Faults(ping_times_out=True),
    "hook-500": Faults(hook_status=500),
    "slow-ingest": Faults(slow_ingest_ms=500),
    "wrong-event-name": Faults(wrong_event_name="mpm_event"),
    "drop-correlation-id": Faults(drop_correlation_id=True),
    "emit-twice": Faults(emit_twice=True),
    "relay-to-empty-room": Faults(relay_room="nobody_room"),
}


def combine_faults(names: Iterable[str]) -> Faults:
    """Merge presets by name; an unknown name raises ``KeyError`` naming it."""
    merged = Faults()
    default = Faults()
    for name in names:
        preset = FAULT_PRESETS[name]
        changes = {f.name: getattr(preset, f.name) for f in fields(preset)
                   if getattr(preset, f.name) != getattr(default, f.name)}
        merged = replace(merged, **changes)
    return merged


class DiagnosticServer:
    """A python-socketio ``AsyncServer`` on aiohttp in one of two layouts, startable in-process.

    ``DiagnosticServer(layout="claude-mpm", host="127.0.0.1", port=0, sinks=[...])``, then
    ``await server.start()``; ``server.port`` / ``server.url`` tell where it listens;
    ``await server.stop()``. ``faults`` makes it broken on purpose (see :class:`Faults`).
    ``start()`` raises ``OSError`` (errno EADDRINUSE) when the port is taken.
    """

    def __init__(self, layout: str = "claude-mpm", host: str = "127.0.0.1", port: int = 0, *,
                 token: str = DEFAULT_TOKEN, faults: Faults | None = None,
                 sinks: Sequence[Sink] = (),
                 ping_interval: float | tuple[float, float] = CLAUDE_MPM_PING_INTERVAL,
                 ping_timeout: float = CLAUDE_MPM_PING_TIMEOUT,
                 heartbeat_every: float = HEARTBEAT_EVERY) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}: choose one of {', '.join(LAYOUTS)}")
        self.layout = layout
        self.host = host
        self.port = port
        self.token = token
        self.faults = faults or Faults()
        self._sinks = list(sinks)
        self._heartbeat_every = heartbeat_every
        self._started = time.monotonic()
        if self.faults.ping_times_out:
            ping_interval, ping_timeout = TIMING_OUT_PING
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp", cors_allowed_origins="*", ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            transports=["polling"] if self.faults.polling_only else ["polling", "websocket"],
            allow_upgrades=not self.faults.polling_only)
        self.namespaces: tuple[str, ...] = (
            ("/",) if layout == "claude-mpm" or self.faults.reject_namespaces else SEED_NAMESPACES)
        for namespace in self.namespaces:
            self._register(namespace)
        self.app = web.Application()
        self.sio.attach(self.app)
        self.app.router.add_get("/", self._index)
        self.app.router.add_get(HEALTH_PATH, self._health)
        self.app.router.add_post(INGEST_PATH, self._ingest)
        self._runner: web.AppRunner | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        self._runner, self.port = await serve_app(self.app, self.host, self.port)
        self._started = time.monotonic()
        if self.layout == "claude-mpm":
            self._heartbeat = asyncio.create_task(self._heartbeat_loop())

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if self._runner is not None:
            await self.sio.shutdown()
            await self._runner.cleanup()
            self._runner = None

    def clients(self, namespace: str = "/", room: str | None = None) -> list[str]:
        """The Socket.IO sids connected to ``namespace`` (and in ``room``, when given)."""
        if namespace not in self.sio.manager.rooms:
            return []
        return [sid for sid, _eio in self.sio.manager.get_participants(namespace, room)]

    def _emit(self, kind: str, **fields_: Any) -> None:
        extra = fields_.pop("extra", {})
        record = Record(event=kind, ts=time.time(), extra={"role": "server", **extra},
                        **fields_)
        for sink in self._sinks:
            sink(record)

    def _session_fields(self, sid: str, namespace: str) -> dict[str, Any]:
        try:
            transport: str | None = self.sio.transport(sid, namespace)
        except KeyError:
            transport = None
        return {"sio_sid": sid, "nsp": namespace, "transport": transport,
                "eio_sid": self.sio.manager.eio_sid_from_sid(sid, namespace)}

    def _register(self, namespace: str) -> None:
        async def on_connect(sid: str, environ: dict[str, Any], *rest: Any) -> None:
            await self._on_connect(sid, environ, rest[0] if rest else None, namespace)

        async def on_disconnect(sid: str, reason: str = "") -> None:
            await self._on_disconnect(sid, namespace, reason)

        async def on_event(name: str, sid: str, *args: Any) -> Any:
            return await self._on_event(sid, namespace, name, list(args))

        self.sio.on("connect", on_connect, namespace=namespace)
        self.sio.on("disconnect", on_disconnect, namespace=namespace)
        self.sio.on("*", on_event, namespace=namespace)

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any,
                          namespace: str) -> None:
        auth_extra: dict[str, Any] = {"auth": None if auth is None else fingerprint(auth),
                                      "remote": environ.get("REMOTE_ADDR")}
        if isinstance(auth, dict):
            auth_extra["auth_keys"] = sorted(auth)
        self._emit(model.SIO_CONNECT, dir="in", **self._session_fields(sid, namespace),
                   extra=auth_extra)
        if auth and self.faults.ignore_auth_connect:
            # claude-mpm's handler is `connect(sid, environ)`: python-socketio calls it with the
            # auth payload, the TypeError escapes, and the CONNECT is never answered.
            self._emit(model.SIO_CONNECT_ERROR, **self._session_fields(sid, namespace),
                       extra={"message": "connect handler rejects the auth argument; "
                                         "CONNECT left unanswered", "answered": False})
            raise TypeError("connect() takes 2 positional arguments but 3 were given")
        if self.layout == "namespaces":
            token = auth.get("token") if isinstance(auth, dict) else None
            if token is None:
                self._refuse(sid, namespace, "Authentication token required")
            if token != self.token:
                self._refuse(sid, namespace, "Invalid authentication token")
            await self.sio.enter_room(sid, room_for(namespace), namespace=namespace)
        self._emit(model.SIO_CONNECT_OK, dir="out", **self._session_fields(sid, namespace),
                   extra={"room": room_for(namespace) if self.layout == "namespaces" else None})
        if self.layout == "claude-mpm":
            # Emitted from a task: python-socketio sends the CONNECT answer only after this
            # handler returns, and the welcome must not overtake it.
            asyncio.get_running_loop().create_task(self._welcome(sid))

    def _refuse(self, sid: str, namespace: str, message: str) -> None:
        self._emit(model.SIO_CONNECT_ERROR, dir="out", sio_sid=sid, nsp=namespace,
                   extra={"message": message, "answered": True})
        raise socketio.exceptions.ConnectionRefusedError(message)

    async def _welcome(self, sid: str) -> None:
        welcome = {"message": "Connected to the sio-sniffer diagnostic server",
                   "client_id": sid, "server_time": _now_iso()}
        await self._send_one("dashboard:welcome", welcome, sid)
        await self._broadcast("dashboard:client:count", {"count": len(self.clients("/"))},
                              source="connect")

    async def _on_disconnect(self, sid: str, namespace: str, reason: str) -> None:
        self._emit(model.SIO_DISCONNECT, sio_sid=sid, nsp=namespace,
                   extra={"reason": str(reason) or None})
        if self.layout == "claude-mpm":
            count = len([s for s in self.clients("/") if s != sid])
            asyncio.get_running_loop().create_task(self._broadcast(
                "dashboard:client:count", {"count": count}, source="disconnect",
                skip_sid=sid))

    async def _on_event(self, sid: str, namespace: str, name: str, args: list[Any]) -> Any:
        self._emit(model.SIO_EVENT, dir="in", name=name, args=args,
                   **self._session_fields(sid, namespace))
        payload = self._scrub(args[0] if args else None)
        if self.layout == "claude-mpm":
            if name != "claude_event" or self.faults.drop_hook_events:
                return None
            names = [self.faults.wrong_event_name] if self.faults.wrong_event_name else \
                ["hook:event", "claude_event"]
            for relay_name in names:
                await self._broadcast(relay_name, payload, source="sio")
            return None
        if not self.faults.drop_hook_events:
            relay_name = self.faults.wrong_event_name or name
            await self._broadcast(relay_name, payload, namespace=namespace,
                                  room=room_for(namespace), skip_sid=sid, source="sio")
            if namespace != "/":
                await self._broadcast(relay_name, payload, room=room_for("/"), source="sio")
        return {"status": "received", "event": name}

    def _scrub(self, payload: Any) -> Any:
        if self.faults.drop_correlation_id and isinstance(payload, dict):
            return {k: v for k, v in payload.items() if k != "correlation_id"}
        return payload

    async def _send_one(self, name: str, payload: Any, sid: str, namespace: str = "/") -> None:
        try:
            await self.sio.emit(name, payload, to=sid, namespace=namespace)
        except Exception as exc:  # a transport that died under us: record it, keep serving
            self._emit(model.SIO_EVENT, dir="out", sio_sid=sid, nsp=namespace, name=name,
                       args=[payload], extra={"ok": False, "error": repr(exc)})
            return
        self._emit(model.SIO_EVENT, dir="out", sio_sid=sid, nsp=namespace, name=name,
                   args=[payload], extra={"ok": True})

    async def _broadcast(self, name: str, payload: Any, *, namespace: str = "/",
                         room: str | None = None, skip_sid: str | None = None,
                         source: str) -> None:
        if self.faults.relay_room is not None and source in ("http", "sio"):
            room = self.faults.relay_room
        recipients = [s for s in self.clients(namespace, room) if s != skip_sid]
        copies = 2 if self.faults.emit_twice and source in ("http", "sio") else 1
        error: str | None = None
        try:
            for _ in range(copies):
                await self.sio.emit(name, payload, namespace=namespace, to=room,
                                    skip_sid=skip_sid)
        except Exception as exc:  # a transport that died under us: record it, keep serving
            error = repr(exc)
        where = f"room {room!r} of {namespace}" if room else f"namespace {namespace}"
        if error is None and not recipients and source in ("http", "sio"):
            error = f"no client in {where}"
        self._emit(model.BROADCAST, dir="out", nsp=namespace, name=name, args=[payload],
                   extra={"room": room, "recipients": recipients, "copies": copies,
                          "source": source, "ok": error is None, "error": error})

    async def _ingest(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        if self.faults.slow_ingest_ms:
            await asyncio.sleep(self.faults.slow_ingest_ms / 1000)
        if self.faults.hook_status is not None:
            size = len(await request.read())
            return self._http_done(request, started, self.faults.hook_status, size,
                                   f"Error: simulated failure (hook_status="
                                   f"{self.faults.hook_status})")
        try:
            # Like the monitor: anything that goes wrong here (bad JSON, a body over aiohttp's
            # 1 MiB limit, a non-object body) is a 500 with the exception's text.
            body = await request.json()
            name, payload = self._unwrap(body)
        except Exception as exc:
            return self._http_done(request, started, 500, request.content_length or 0,
                                   f"Error: {exc!s}")
        self._emit(model.SIO_EVENT, dir="in", name=body.get("event"), args=[body],
                   extra={"via": "http", "path": INGEST_PATH})
        payload = self._scrub(payload)
        if not self.faults.drop_hook_events:
            relay_name = self.faults.wrong_event_name or name
            room = room_for("/") if self.layout == "namespaces" else None
            await self._broadcast(relay_name, payload, room=room, source="http")
        return self._http_done(request, started, 204, request.content_length or 0, None)

    @staticmethod
    def _unwrap(body: Any) -> tuple[str, dict[str, Any]]:
        """The monitor's normalisation: {namespace, event, data: {type, subtype, data, ...}}."""
        inner = body.get("data", {})
        if not isinstance(inner, dict):
            raise ValueError("'data' is not an object")
        payload: dict[str, Any] = {
            "type": inner.get("type", "hook"),
            "subtype": inner.get("subtype", "unknown"),
            "data": inner.get("data", {}),
            "timestamp": inner.get("timestamp") or _now_iso(),
            "session_id": inner.get("session_id"),
            "source": inner.get("source", "hook"),
        }
        for optional in ("correlation_id", "cwd"):
            if optional in inner:
                payload[optional] = inner[optional]
        return event_name_for(payload["type"], payload["subtype"]), payload

    def _http_done(self, request: web.Request, started: float, status: int, size: int,
                   text: str | None) -> web.Response:
        self._emit(model.HTTP, dir="in", extra={
            "method": request.method, "path": request.path, "status": status, "bytes": size,
            "duration_ms": round((time.monotonic() - started) * 1000, 3)})
        if text is None:
            return web.Response(status=status)
        return web.Response(status=status, text=text)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({
            "status": "running", "service": SERVICE_NAME, "port": self.port,
            "pid": os.getpid(), "uptime": int(time.monotonic() - self._started),
            "namespaces": list(self.namespaces), "ingest": INGEST_PATH})

    async def _index(self, request: web.Request) -> web.Response:
        items = "".join(f"<li><code>{html.escape(ns)}</code></li>" for ns in self.namespaces)
        page = (
            "<!doctype html><html><head><meta charset='utf-8'>"
            "<title>sio-sniffer diagnostic server</title></head><body>"
            "<h1>sio-sniffer diagnostic server</h1>"
            f"<p>Socket.IO at <code>/socket.io/</code>, namespaces:</p><ul>{items}</ul>"
            f"<p>Hook events: <code>POST {INGEST_PATH}</code>. "
            f"Health: <a href='{HEALTH_PATH}'>{HEALTH_PATH}</a>.</p></body></html>")
        return web.Response(text=page, content_type="text/html")

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_every)
            await self._broadcast("heartbeat", {
                "type": "heartbeat", "timestamp": _now_iso(),
                "server_uptime": int(time.monotonic() - self._started),
                "active_connections": len(self.clients("/"))}, source="heartbeat")
