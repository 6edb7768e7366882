"""The forwarding path: a byte-level TCP relay with a passive tap.

Each client connection gets its own upstream connection, and bytes go across verbatim the moment
they arrive (``data_received`` writes straight to the other transport: no batching, no parsing
first). So keep-alive, pipelining, Host/Origin/cookies, compression and close codes are whatever the
peers made them, and the proxy adds no timeouts or size limits of its own. Backpressure is passed
through (a side whose write buffer is over the high-water mark pauses reading on the other side)
and EOF is passed on as a half-close, the other direction staying open until it ends too.

Only after a chunk has been handed to the other side does a copy go to the connection's
:class:`~sio_sniffer.transport.tap.ConnectionTap`, which can neither raise nor block.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import Literal, Protocol, cast
from urllib.parse import urlsplit

from sio_sniffer.model.probes import SNIFFER_502_PREFIX
from sio_sniffer.model.tap import (
    ConnClose,
    ConnOpen,
    Direction,
    TapEvent,
    UpstreamError,
)
from sio_sniffer.transport.tap.connection import ConnectionTap

MiB = 1 << 20
_SCHEMES = {"http": (False, 80), "ws": (False, 80), "https": (True, 443), "wss": (True, 443)}
_IPV6_UNAVAILABLE = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT}

Role = Literal["client", "server"]


# How long stop() waits for aborted connections to report that they are gone.
STOP_GRACE = 2.0


class TapLike(Protocol):
    """What the relay hands copies to: a parsing ConnectionTap, or a ChannelTap."""

    def data(self, dir: Direction, data: bytes) -> None: ...
    def eof(self, dir: Direction) -> None: ...
    def emit(self, event: TapEvent) -> None: ...


class PortInUseError(OSError):
    """A listen address is taken; the message names the holder (when found) and the fix."""

    def __init__(self, host: str, port: int, holder: str | None) -> None:
        self.host = host
        self.port = port
        self.holder = holder
        where = format_addr(host, port)
        by = f" by {holder}" if holder else ""
        message = (
            f"cannot listen on {where}: the address is already in use{by}; stop that process or "
            f"choose another port with --listen (for claude-mpm, move its monitor with "
            f"`claude-mpm monitor start --port 8766` and let the sniffer take 8765)"
        )
        super().__init__(errno.EADDRINUSE, message)

    def __str__(self) -> str:
        return str(self.strerror)


def port_holder(port: int) -> str | None:
    """Best effort: "pid N (command line)" of a local process listening on TCP ``port``.

    Reads /proc/net/tcp{,6} for the listening socket's inode, then looks for that inode among the
    open files of the processes we may inspect. None when not on Linux or not permitted.
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    # local_address is HEXIP:HEXPORT, st 0A is LISTEN, field 9 is the inode
                    if (len(fields) > 9 and fields[3] == "0A"
                            and int(fields[1].rsplit(":", 1)[1], 16) == port):
                        inodes.add(f"socket:[{fields[9]}]")
        except (OSError, ValueError):
            continue
    if not inodes:
        return None
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target in inodes:
                return f"pid {pid} ({_cmdline(pid)})"
    return None


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(w.decode("utf-8", "replace") for w in words if w)
    return text if len(text) <= 100 else text[:97] + "..."


def _nodelay(transport: asyncio.BaseTransport) -> None:
    # asyncio already sets TCP_NODELAY on TCP transports; set it again so the latency guarantee
    # does not depend on that implementation detail (and covers TLS transports the same way)
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _discard(data: bytes) -> None:
    """Where bytes go once the other side is gone."""


def _no_tap(dir: Direction, data: bytes) -> None:
    """The tap of a connection whose bytes are tapped elsewhere (the 502 answer)."""


class _Side(asyncio.Protocol):
    """One leg of a relayed connection. ``forward`` is the other leg's ``transport.write``."""

    def __init__(self, link: _Link, role: Role) -> None:
        self.link = link
        self.role: Role = role
        self.dir: Direction = "in" if role == "client" else "out"
        self.transport: asyncio.Transport | None = None
        self.peer: _Side | None = None
        # until the other leg exists, bytes wait here (Python 3.10 starts reading a new
        # transport even when connection_made paused it)
        self.early: list[bytes] = []
        self.forward: Callable[[bytes], None] = self.early.append
        self.tap_data = link.tap.data
        self.got_eof = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport, though not necessarily an asyncio.Transport subclass: uvloop's
        # are not.
        self.transport = cast(asyncio.Transport, transport)
        _nodelay(transport)

    def data_received(self, data: bytes) -> None:
        self.forward(data)
        self.tap_data(self.dir, data)

    def eof_received(self) -> bool:
        return self.link.eof(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.lost(self, exc)

    def pause_writing(self) -> None:
        # our transport cannot take more: stop reading what the other side sends us
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()


class _Link:
    """A client connection, its upstream connection, and the tap watching both."""

    def __init__(self, relay: Relay, conn: str) -> None:
        self.relay = relay
        self.conn = conn
        self.tap: TapLike = relay.tap_factory(conn) if relay.tap_factory is not None else \
            ConnectionTap(conn, relay.on_event, relay.tap_body_limit, time.time, relay.relayed)
        self.client: _Side = _ClientSide(self)
        self.server: _Side | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.first: Literal["client", "server", "proxy"] | None = None
        self.error: str | None = None
        self.answered = False
        self.finished = False

    def accepted(self) -> None:
        """The client connected: hold its bytes until the upstream connection exists."""
        transport = self.client.transport
        assert transport is not None
        transport.pause_reading()
        # on 3.10 the transport registers its reader after connection_made: pause again then
        asyncio.get_running_loop().call_soon(self._hold, transport)
        peer = transport.get_extra_info("peername")
        self.tap.emit(ConnOpen(
            conn=self.conn, ts=time.time(),
            peer=format_addr(str(peer[0]), peer[1]) if isinstance(peer, tuple) else str(peer),
            tls=self.relay.ssl_listen is not None,
        ))
        self.connecting = asyncio.get_running_loop().create_task(self._connect())

    def _hold(self, transport: asyncio.Transport) -> None:
        if self.server is None and self.connecting is not None:
            transport.pause_reading()

    async def _connect(self) -> None:
        relay = self.relay
        loop = asyncio.get_running_loop()
        try:
            _, server = await loop.create_connection(
                lambda: _Side(self, "server"), relay.upstream_host, relay.upstream_port,
                ssl=relay.ssl_upstream,
                server_hostname=relay.upstream_host if relay.ssl_upstream else None,
            )
        except OSError as exc:
            self.connecting = None
            self._upstream_failed(exc)
            return
        except asyncio.CancelledError:
            self.connecting = None
            if self.client.closed:
                self._finish()
            raise
        self.connecting = None
        self.server = server
        client = self.client
        assert client.transport is not None and server.transport is not None
        if client.closed:
            server.transport.close()
            return
        client.peer, server.peer = server, client
        for chunk in client.early:
            server.transport.write(chunk)
        for chunk in server.early:
            client.transport.write(chunk)
        client.early, server.early = [], []
        client.forward = server.transport.write
        server.forward = client.transport.write
        if client.got_eof:
            if server.transport.can_write_eof():
                server.transport.write_eof()
            else:
                server.transport.close()
        client.transport.resume_reading()

    def _upstream_failed(self, exc: OSError) -> None:
        relay = self.relay
        if isinstance(exc, ConnectionRefusedError):
            reason = f"upstream refused connection at {relay.upstream}: is the server running?"
        elif isinstance(exc, ssl.SSLError):
            reason = f"TLS handshake with upstream {relay.upstream} failed: {exc}"
        else:
            reason = (f"cannot connect to upstream {relay.upstream}: "
                      f"{exc.strerror or exc}: is the server running?")
        self.first = self.first or "proxy"
        self.error = reason
        self.tap.emit(UpstreamError(conn=self.conn, ts=time.time(), url=relay.upstream,
                                 reason=reason))
        client = self.client
        if client.closed:
            self._finish()
            return
        # Prefixed so a client can tell the sniffer's 502 from one the server sent itself.
        body = (SNIFFER_502_PREFIX + reason + "\n").encode()
        response = (
            b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
        )

        def respond() -> None:
            # only once the request is there, so the client is not reset while still sending it
            if self.answered or client.transport is None:
                return
            self.answered = True
            client.transport.write(response)
            self.tap.data("out", response)
            if client.transport.can_write_eof() and not client.got_eof:
                client.transport.write_eof()
            else:  # TLS, or the client is done sending too: nothing is left to wait for
                client.transport.close()

        def answer(data: bytes) -> None:
            self.tap.data("in", data)  # the request goes to the tap before its answer
            respond()

        client.tap_data = _no_tap
        client.forward = answer
        if client.early:  # already tapped as they came
            respond()
        elif client.got_eof:  # it sent nothing and is done: there is nothing to answer
            assert client.transport is not None
            client.transport.close()
            return
        assert client.transport is not None
        client.transport.resume_reading()

    def eof(self, side: _Side) -> bool:
        """``side`` sent EOF: pass it on; True keeps ``side``'s transport open for writing."""
        if side.got_eof:
            # the same EOF again: Python 3.10 delivers it anew when reading resumes
            return True
        self.first = self.first or side.role
        side.got_eof = True
        self.tap.eof(side.dir)
        peer = side.peer
        if peer is None and side is self.client and self.connecting is not None:
            # EOF before the upstream connection exists (Python 3.10 reads a new connection
            # before the pause in connection_made takes): on plain TCP it follows the early
            # bytes there; a TLS transport closes itself at EOF, and the early bytes go nowhere
            return side.transport is not None and \
                side.transport.get_extra_info("sslcontext") is None
        if peer is None or peer.transport is None or peer.closed:
            return False
        if peer.got_eof:
            peer.transport.close()
            return False
        if not peer.transport.can_write_eof():
            # TLS cannot half-close: ending the other leg (after its pending writes) is all
            # that is left
            peer.transport.close()
            return False
        peer.transport.write_eof()
        # a TLS transport closes itself after EOF whatever we answer (asyncio warns if we ask)
        return side.transport is not None and side.transport.get_extra_info("sslcontext") is None

    def lost(self, side: _Side, exc: Exception | None) -> None:
        if side.closed:
            return
        side.closed = True
        self.first = self.first or side.role
        if exc is not None and self.error is None:
            self.error = f"{side.role}: {exc!r}"
        if not side.got_eof:
            self.tap.eof(side.dir)
        peer = side.peer
        if peer is not None:
            peer.forward = _discard
            if not peer.closed and peer.transport is not None:
                peer.transport.close()
                return
        if self.connecting is None:
            self._finish()

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.relay.links.discard(self)
        if not self.relay.links:
            self.relay.idle.set()
        self.tap.emit(ConnClose(conn=self.conn, ts=time.time(), by=self.first or "proxy",
                                  error=self.error))

    def abort(self) -> None:
        """The relay is stopping: drop both legs now."""
        self.first = self.first or "proxy"
        if self.connecting is not None:
            self.connecting.cancel()
        for side in (self.client, self.server):
            if side is not None and side.transport is not None and not side.closed:
                side.transport.abort()


def format_addr(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Relay:
    """Listen on ``listen``, relay every connection to ``upstream``, report to ``on_event``.

    ``upstream`` is ``http://``/``ws://`` (plain TCP) or ``https://``/``wss://`` (TLS originated
    here, verified with ``ssl_upstream`` or the system defaults, SNI = the upstream host); a path
    is not allowed because requests are forwarded exactly as the client wrote them. ``listen`` may
    ask for port 0; ``bound`` holds the real addresses after :meth:`start`, and later port-0
    entries reuse the first one's port when it is free, so one port serves IPv4 and IPv6.
    ``::1`` is skipped silently on a machine without IPv6. ``on_event`` runs synchronously on
    the event loop for every tap event: keep it quick (queue work elsewhere); if it raises, the
    error is logged and traffic is unaffected. ``tap_factory`` replaces the in-process parsing
    tap of each connection (``on_event`` is then unused): the `proxy` command ships raw copies
    to another process with it (:mod:`sio_sniffer.transport.channel`).
    """

    def __init__(
        self,
        upstream: str,
        listen: list[tuple[str, int]],
        on_event: Callable[[TapEvent], None],
        *,
        ssl_listen: ssl.SSLContext | None = None,
        ssl_upstream: ssl.SSLContext | None = None,
        tap_body_limit: int = 16 * MiB,
        tap_factory: Callable[[str], TapLike] | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in _SCHEMES:
            raise ValueError(
                f"upstream {upstream!r}: the scheme must be http, https, ws or wss")
        if not parts.hostname:
            raise ValueError(f"upstream {upstream!r} has no host")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(
                f"upstream {upstream!r}: give only scheme, host and port; requests are forwarded "
                f"with the path the client sent")
        tls, default_port = _SCHEMES[parts.scheme]
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"upstream {upstream!r}: {exc}") from exc
        if not listen:
            raise ValueError("nothing to listen on")
        self.upstream = upstream.rstrip("/")
        self.upstream_host = parts.hostname
        self.upstream_port = port or default_port
        self.ssl_upstream = (ssl_upstream or ssl.create_default_context()) if tls else None
        self.ssl_listen = ssl_listen
        self.listen = list(listen)
        self.on_event = on_event
        self.tap_body_limit = tap_body_limit
        self.tap_factory = tap_factory
        # bytes forwarded per direction, as the in-process taps saw them (a tap_factory's
        # channel counts its own)
        self.relayed: dict[Direction, int] = {"in": 0, "out": 0}
        self.bound: list[tuple[str, int]] = []
        self.links: set[_Link] = set()
        self.idle = asyncio.Event()
        self._servers: list[asyncio.Server] = []
        self._ids = itertools.count(1)

    def _client_protocol(self) -> _Side:
        link = _Link(self, f"c{next(self._ids)}")
        self.links.add(link)
        return link.client

    async def start(self) -> None:
        """Bind every listen address; raise :class:`PortInUseError` if one is taken."""
        loop = asyncio.get_running_loop()
        shared_port: int | None = None
        try:
            for host, port in self.listen:
                candidates = [port] if port or shared_port is None else [shared_port, 0]
                server = None
                for attempt in candidates:
                    try:
                        server = await loop.create_server(
                            self._client_protocol, host, attempt, ssl=self.ssl_listen)
                        break
                    except OSError as exc:
                        if exc.errno == errno.EADDRINUSE and attempt != port:
                            continue
                        if exc.errno == errno.EADDRINUSE:
                            raise PortInUseError(host, port, port_holder(port)) from exc
                        if host == "::1" and (exc.errno in _IPV6_UNAVAILABLE
                                              or isinstance(exc, socket.gaierror)):
                            break
                        raise
                if server is None:
                    continue
                self._servers.append(server)
                for sock in server.sockets:
                    addr = sock.getsockname()
                    self.bound.append((addr[0], addr[1]))
                if port == 0 and shared_port is None:
                    shared_port = self.bound[-1][1]
        except BaseException:
            await self._close_servers()
            raise
        if not self._servers:
            raise OSError(errno.EADDRNOTAVAIL,
                          f"none of the listen addresses is available: {self.listen}")

    @property
    def serving(self) -> bool:
        """Listening: started and not stopped."""
        return bool(self._servers)

    async def stop(self) -> None:
        """Stop listening and drop every relayed connection."""
        for server in self._servers:
            server.close()
        for link in list(self.links):
            link.abort()
        await self._close_servers()
        if self.links:
            # the aborted legs report connection_lost on later loop iterations: wait for them,
            # so every connection's close is told before stop() returns
            self.idle.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.idle.wait(), STOP_GRACE)

    async def _close_servers(self) -> None:
        servers, self._servers = self._servers, []
        self.bound = []
        for server in servers:
            server.close()
        for server in servers:
            await server.wait_closed()


class _ClientSide(_Side):
    """The accepted leg: starts the upstream connection as soon as the client is there."""

    def __init__(self, link: _Link) -> None:
        super().__init__(link, "client")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.link.accepted()
