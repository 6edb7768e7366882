"""The bridge: a Socket.IO server with the ``/admin`` namespace, fed by the sniffer's records."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import os
import secrets
import socket as socketlib
import sys
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sio_sniffer import model
from sio_sniffer.model import Record
from sio_sniffer.model.addresses import RemoteBindRefused, bind_policy
from sio_sniffer.model.tap import ConnClose, ConnOpen, HttpRequest, TapEvent, WsOpen
from sio_sniffer.web.adminui.options import HOSTED_UI, AdminUIError, AdminUIOptions
from sio_sniffer.web.adminui.protocol import (
    FEATURES,
    NAMESPACE,
    WRITE_ACTIONS,
    Client,
    Conn,
    Socket,
    handshake_headers,
    iso,
    room_name,
    safe_args,
    serialize_socket,
    text_size,
)
from sio_sniffer.web.adminui.static import find_ui_dist, offline_index
from sio_sniffer.web.app import serve_app

if TYPE_CHECKING:
    import socketio
    from aiohttp import web


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(slots=True)
class _Admin:
    """A connected Admin UI: its outgoing queue and the task that drains it."""

    sid: str
    queue: deque[tuple[str, tuple[Any, ...]]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    dropped: int = 0
    refused: set[str] = field(default_factory=set)


class AdminUIBridge:
    """A Socket.IO server with the Admin UI's ``/admin`` namespace, fed by sniffer records.

    Use :meth:`record` as a record sink and :meth:`tap` as a tap sink of the Sniffer, call
    :meth:`watch_rooms` with ``sniffer.rooms`` for inferred rooms, then ``await start()``.
    """

    @classmethod
    def from_options(cls, options: AdminUIOptions, server_id: str | None = None
                     ) -> AdminUIBridge:
        return cls(options.host, options.port, username=options.username,
                   password=options.password, static_path=options.static_path,
                   server_id=server_id)

    def __init__(self, host: str = "127.0.0.1", port: int = 0, username: str | None = None,
                 password: str | None = None, static_path: str | os.PathLike[str] | None = None,
                 *, server_id: str | None = None, interval: float = 2.0, history: int = 200,
                 silence_grace: float = 5.0,
                 max_queue: int = 10_000, max_clients: int = 10_000,
                 allowed_origins: Sequence[str] = (HOSTED_UI,),
                 report: Callable[[str], None] = _stderr) -> None:
        if (username is None) != (password is None):
            raise AdminUIError("the Admin UI needs both a username and a password, or neither")
        try:
            self.policy = bind_policy(host, "Admin UI bridge", "credentials",
                                      credentials=username is not None)
        except RemoteBindRefused as exc:
            raise AdminUIError(str(exc)) from None
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.static_dir = find_ui_dist(static_path) if static_path is not None else None
        self.hostname = socketlib.gethostname()
        self.server_id = server_id or f"{self.hostname} (sio-sniffer)"
        self.interval = interval
        self.silence_grace = silence_grace
        self.max_queue = max_queue
        self.max_clients = max_clients
        self.allowed_origins = tuple(o.rstrip("/") for o in allowed_origins)
        self._report = report
        self._started = time.monotonic()
        self._conns: OrderedDict[str, Conn] = OrderedDict()
        self._clients: OrderedDict[str, Client] = OrderedDict()
        self._sockets: dict[tuple[str, str], Socket] = {}
        self._nsps: OrderedDict[str, None] = OrderedDict()
        self._history: deque[tuple[str, tuple[Any, ...]]] = deque(maxlen=history)
        self._aggregated: dict[tuple[int, str, str | None], int] = {}
        self._admins: dict[str, _Admin] = {}
        self._sessions: OrderedDict[str, None] = OrderedDict()
        self._rooms_source: Callable[[], list[dict[str, Any]]] | None = None
        self._room_names: dict[tuple[str, frozenset[str]], str] = {}
        self._sio: socketio.AsyncServer | None = None
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._index: bytes | None = None
        self.bound: tuple[str, int] | None = None
        self.refused = 0


    @property
    def url(self) -> str:
        host, port = self.bound or (self.host, self.port)
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def watch_rooms(self, source: Callable[[], list[dict[str, Any]]]) -> None:
        """Where inferred rooms come from (``Sniffer.rooms`` / ``Analyzer.rooms``)."""
        self._rooms_source = source

    async def start(self) -> None:
        import socketio
        from aiohttp import web

        self._sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins=self._origin_ok,
                                         cors_credentials=True, logger=False,
                                         engineio_logger=False)
        self._sio.on("connect", self._on_connect, namespace=NAMESPACE)
        self._sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)
        for action in WRITE_ACTIONS:
            self._sio.on(action, self._refuser(action), namespace=NAMESPACE)
        app = web.Application()
        self._sio.attach(app)
        if self.static_dir is not None:
            self._index = offline_index(self.static_dir / "index.html")
            app.router.add_get("/", self._serve_index)
            app.router.add_get("/index.html", self._serve_index)
            app.router.add_static("/", self.static_dir)
        try:
            self._runner, port = await serve_app(app, self.host, self.port, shutdown_timeout=0.5)
        except OSError as exc:
            raise AdminUIError(f"the Admin UI bridge cannot listen on "
                               f"{self.host}:{self.port}: {exc.strerror or exc}") from None
        self.bound = (self.host, port)
        self._started = time.monotonic()
        self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for admin in list(self._admins.values()):
            self._drop_admin(admin)
        if self._sio is not None:
            with contextlib.suppress(Exception):
                await self._sio.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


    def tap(self, event: TapEvent) -> None:
        """Tap sink: keeps each connection's TLS flag and Engine.IO handshake request."""
        if isinstance(event, ConnOpen):
            self._conns[event.conn] = Conn(tls=event.tls)
            while len(self._conns) > self.max_clients:
                self._conns.popitem(last=False)
        elif isinstance(event, (HttpRequest, WsOpen)):
            request = event.request if isinstance(event, WsOpen) else event
            if "EIO=" in request.target and "sid=" not in request.target:
                conn = self._conns.get(event.conn)
                if conn is not None:
                    conn.target = request.target
                    conn.headers = request.headers
        elif isinstance(event, ConnClose):
            self._conns.pop(event.conn, None)

    def record(self, rec: Record) -> None:
        """Record sink: update the tables and queue what the connected Admin UIs must hear."""
        kind = rec.event
        if kind == model.EIO_OPEN:
            self._open(rec)
            return
        client = self._clients.get(rec.eio_sid) if rec.eio_sid is not None else None
        if client is None:
            return
        client.last_seen = rec.ts
        nsp = rec.nsp or "/"
        if kind == model.SIO_EVENT:
            self._event(rec, client)
        elif kind == model.SIO_ACK:
            self._count_packet(rec)
        elif kind == model.EIO_UPGRADE:
            self._upgrade(client)
        elif kind == model.SIO_CONNECT:
            # The handshake's auth as the Admin UI shows it: the record's, values fingerprinted.
            auth = rec.get("auth")
            client.auth[nsp] = auth if isinstance(auth, dict) else \
                {} if auth is None else {"fingerprint": auth}
        elif kind == model.SIO_CONNECT_OK and rec.sio_sid is not None:
            self._socket_connected(client, nsp, rec.sio_sid, rec.ts)
        elif kind == model.SIO_CONNECT_ERROR:
            client.auth.pop(nsp, None)
        elif kind == model.SIO_DISCONNECT:
            reason = ("client namespace disconnect" if rec.dir == "in"
                      else "server namespace disconnect")
            self._socket_gone(client, nsp, reason, rec.ts)
        elif kind == model.EIO_CLOSE:
            self._close(client, rec.get("reason") or "transport close", rec.ts)


    def _open(self, rec: Record) -> None:
        sid = rec.eio_sid
        if sid is None:
            return
        conn = self._conns.get(rec.conn) if rec.conn is not None else None
        interval = rec.get("ping_interval") or 25_000
        timeout = rec.get("ping_timeout") or 20_000
        client = Client(eio_sid=sid, opened=rec.ts, transport=rec.transport or "polling",
                         peer=rec.get("peer"), user_agent=rec.get("user_agent"),
                         limit=(interval + timeout) / 1000 + self.silence_grace,
                         last_seen=rec.ts,
                         secure=bool(conn and conn.tls))
        if conn is not None and conn.target is not None:
            client.target = conn.target
            client.headers = handshake_headers(conn.headers)
            conn.target = None
        elif client.user_agent:
            client.headers = {"user-agent": client.user_agent}
        self._clients[sid] = client
        while len(self._clients) > self.max_clients:
            _, old = self._clients.popitem(last=False)
            self._close(old, "forgotten (too many sessions)", rec.ts)
        self._aggregate(rec.ts, "rawConnection")

    def _upgrade(self, client: Client) -> None:
        client.transport = "websocket"
        for nsp, sio_sid in client.sockets.items():
            self._send("socket_updated", {"id": sio_sid, "nsp": nsp, "transport": "websocket"})

    def _socket_connected(self, client: Client, nsp: str, sio_sid: str, ts: float) -> None:
        old = client.sockets.get(nsp)
        if old is not None and old != sio_sid:
            self._socket_gone(client, nsp, "replaced by a new connection", ts)
        sock = Socket(id=sio_sid, nsp=nsp, client=client, connected=ts,
                       auth=client.auth.pop(nsp, {}), rooms=[sio_sid])
        client.sockets[nsp] = sio_sid
        self._sockets[(nsp, sio_sid)] = sock
        self._nsps[nsp] = None
        self._send("socket_connected", serialize_socket(sock), iso(ts))

    def _socket_gone(self, client: Client, nsp: str, reason: str, ts: float) -> None:
        sio_sid = client.sockets.pop(nsp, None)
        if sio_sid is None:
            return
        self._sockets.pop((nsp, sio_sid), None)
        self._send("socket_disconnected", nsp, sio_sid, reason, iso(ts))

    def _close(self, client: Client, reason: str, ts: float) -> None:
        for nsp in list(client.sockets):
            self._socket_gone(client, nsp, reason, ts)
        if self._clients.get(client.eio_sid) is client:
            del self._clients[client.eio_sid]
        self._aggregate(ts, "rawDisconnection", reason)

    def _event(self, rec: Record, client: Client) -> None:
        self._count_packet(rec)
        nsp = rec.nsp or "/"
        sio_sid = rec.sio_sid or client.sockets.get(nsp)
        if sio_sid is None:
            return
        args = rec.args if isinstance(rec.args, list) else ([] if rec.args is None
                                                            else [rec.args])
        item = ("event_received" if rec.dir == "in" else "event_sent",
                (nsp, sio_sid, [rec.name, *args], iso(rec.ts)))
        self._history.append(item)
        self._send(item[0], *item[1])

    def _count_packet(self, rec: Record) -> None:
        # The counters only feed the periodic server_stats: nobody to tell, nothing to count.
        if not self._admins:
            return
        side = "In" if rec.dir == "in" else "Out"
        self._aggregate(rec.ts, "packets" + side)
        size = rec.size if rec.size is not None else text_size(rec)
        self._aggregate(rec.ts, "bytes" + side, count=size)

    def _aggregate(self, ts: float, kind: str, sub: str | None = None, count: int = 1) -> None:
        key = (int(ts) * 1000, kind, sub)
        self._aggregated[key] = self._aggregated.get(key, 0) + count

    def _sweep(self, now: float) -> None:
        """Sessions silent for longer than pingInterval + pingTimeout (+ a grace) are gone:
        polling clients that stop polling leave no close on the wire."""
        for client in [c for c in self._clients.values() if now - c.last_seen > c.limit]:
            self._close(client, "ping timeout (no traffic seen by the sniffer)", now)

    def _sync_rooms(self) -> None:
        """Turn inferred rooms into room_joined / room_left for the sockets they contain."""
        if self._rooms_source is None:
            return
        wanted: dict[tuple[str, str], list[str]] = {}
        names: dict[tuple[str, frozenset[str]], str] = {}
        for room in self._rooms_source():
            nsp = room.get("nsp")
            members = frozenset(m["eio_sid"] for m in room.get("members", ()))
            # One recipient is the socket's own room; all of the namespace is a broadcast.
            if nsp is None or len(members) < 2 or room.get("everyone"):
                continue
            key = (nsp, members)
            name = self._room_names.get(key) or room_name(nsp, members, room.get("names"))
            names[key] = name
            for eio_sid in members:
                client = self._clients.get(eio_sid)
                sio_sid = client.sockets.get(nsp) if client is not None else None
                if sio_sid is not None:
                    wanted.setdefault((nsp, sio_sid), []).append(name)
        self._room_names = names
        now = iso(time.time())
        for where, sock in self._sockets.items():
            want = wanted.get(where, [])
            for name in [r for r in sock.rooms[1:] if r not in want]:
                sock.rooms.remove(name)
                self._send("room_left", sock.nsp, name, sock.id, now)
            for name in want:
                if name not in sock.rooms:
                    sock.rooms.append(name)
                    self._send("room_joined", sock.nsp, name, sock.id, now)


    def _stats(self, aggregated: bool = True) -> dict[str, Any]:
        """``server_stats``; the aggregated counters go out (and are reset) only with the
        periodic one, which every connected Admin UI hears."""
        counts: dict[str, int] = dict.fromkeys(self._nsps, 0)
        for nsp, _ in self._sockets:
            counts[nsp] = counts.get(nsp, 0) + 1
        events = []
        if aggregated:
            events = [{"timestamp": ts, "type": kind, "subType": sub, "count": n}
                      for (ts, kind, sub), n in self._aggregated.items()]
            self._aggregated.clear()
        return {
            "serverId": self.server_id,
            "hostname": self.hostname,
            "pid": os.getpid(),
            "uptime": round(time.monotonic() - self._started, 3),
            "clientsCount": len(self._clients),
            "pollingClientsCount": sum(1 for c in self._clients.values()
                                       if c.transport == "polling"),
            "aggregatedEvents": events,
            "namespaces": [{"name": n, "socketsCount": c} for n, c in counts.items()],
        }

    def _send(self, event: str, *args: Any) -> None:
        for admin in self._admins.values():
            self._enqueue(admin, event, args)

    def _enqueue(self, admin: _Admin, event: str, args: tuple[Any, ...]) -> None:
        if len(admin.queue) >= self.max_queue:
            admin.queue.popleft()
            admin.dropped += 1
        admin.queue.append((event, args))
        admin.wake.set()

    def _origin_ok(self, origin: str | None, environ: dict[str, Any]) -> bool:
        if not origin:
            return True
        origin = origin.rstrip("/")
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        return origin == own or origin in self.allowed_origins

    def _authenticate(self, auth: Any) -> str | None:
        """``None`` when refused; otherwise a new session id ("" when none is needed)."""
        if self.username is None or self.password is None:
            return ""
        if not isinstance(auth, dict):
            return None
        session = auth.get("sessionId")
        if isinstance(session, str) and session in self._sessions:
            return ""
        user, password = auth.get("username"), auth.get("password")
        if not isinstance(user, str) or not isinstance(password, str):
            return None
        ok_user = hmac.compare_digest(user.encode(), self.username.encode())
        ok_password = hmac.compare_digest(password.encode(), self.password.encode())
        if not (ok_user and ok_password):
            return None
        session = secrets.token_hex(8)
        self._sessions[session] = None
        while len(self._sessions) > 1000:
            self._sessions.popitem(last=False)
        return session

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        import socketio

        session = self._authenticate(auth)
        if session is None:
            # The Admin UI shows its "invalid credentials" text for exactly this message.
            raise socketio.exceptions.ConnectionRefusedError("invalid credentials")
        admin = _Admin(sid)
        if session:
            admin.queue.append(("session", (session,)))
        # The snapshot is taken now, in the same loop step as the admin joins the fan-out, so
        # nothing is shown twice and nothing is missed.
        admin.queue.append(("config", ({"supportedFeatures": list(FEATURES)},)))
        admin.queue.append(("server_stats", (self._stats(aggregated=False),)))
        admin.queue.append(("all_sockets", ([serialize_socket(s) for s in
                                             self._sockets.values()],)))
        admin.queue.extend(self._history)
        self._admins[sid] = admin
        # Runs after python-socketio has sent CONNECT: the UI registers its listeners on
        # "connect", so anything sent earlier would be lost.
        admin.task = asyncio.create_task(self._pump(admin))

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        admin = self._admins.get(sid)
        if admin is not None:
            self._drop_admin(admin)

    def _drop_admin(self, admin: _Admin) -> None:
        self._admins.pop(admin.sid, None)
        if admin.task is not None:
            admin.task.cancel()

    def _refuser(self, action: str) -> Callable[..., Any]:
        async def refuse(sid: str, *args: Any) -> dict[str, str]:
            self.refused += 1
            admin = self._admins.get(sid)
            if admin is not None and action not in admin.refused:
                admin.refused.add(action)
                self._report(f"sio-sniffer: refused the Admin UI's {action!r} request: the "
                             "bridge is read-only (the sniffer never injects traffic)")
            return {"error": "read-only: sio-sniffer only observes"}

        return refuse

    async def _pump(self, admin: _Admin) -> None:
        assert self._sio is not None
        sio = self._sio
        for _ in range(100):
            if sio.manager.is_connected(admin.sid, NAMESPACE):
                break
            await asyncio.sleep(0)
        else:
            self._drop_admin(admin)
            return
        reported = 0
        while True:
            while admin.queue:
                event, args = admin.queue.popleft()
                args = safe_args(args)
                try:
                    await sio.emit(event, args if len(args) != 1 else args[0], to=admin.sid,
                                   namespace=NAMESPACE)
                except Exception as exc:
                    self._report(f"sio-sniffer: sending {event!r} to the Admin UI failed: {exc}")
                    self._drop_admin(admin)
                    return
            if admin.dropped > reported:
                self._report(f"sio-sniffer: the Admin UI {admin.sid} fell behind; "
                             f"{admin.dropped - reported} updates were dropped")
                reported = admin.dropped
            admin.wake.clear()
            await admin.wake.wait()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._sweep(time.time())
            self._sync_rooms()
            stats = self._stats()
            self._send("server_stats", stats)


    async def _serve_index(self, request: web.Request) -> web.Response:
        from aiohttp import web

        assert self._index is not None
        return web.Response(body=self._index, content_type="text/html",
                            headers={"Cache-Control": "no-cache"})

