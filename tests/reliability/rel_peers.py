"""Peers for the reliability tests: the Sniffer in-process, Node servers that can be killed and
restarted, raw WebSocket clients that misbehave on purpose, and upstreams that record bytes or
never answer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sio_sniffer.analysis import AnalysisConfig
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from sio_sniffer.testing import Recorder
from tests.transport.relay_peers import NodeProcess

HERE = Path(__file__).resolve().parent
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@asynccontextmanager
async def sniffing(upstream: str, analysis: AnalysisConfig | None = None,
                   **sinks: Any) -> AsyncIterator[tuple[Sniffer, Recorder]]:
    """A Sniffer on a free loopback port in front of ``upstream``, its records collected."""
    records = Recorder()
    config = ProxyConfig(listen=[("127.0.0.1", 0)], upstream=upstream,
                         analysis=analysis if analysis is not None else AnalysisConfig())
    sniffer = Sniffer(config, sinks=[records, *sinks.get("extra", ())],
                      tap_sinks=sinks.get("tap", ()))
    await sniffer.start()
    try:
        yield sniffer, records
    finally:
        await sniffer.stop()


@asynccontextmanager
async def node(**options: Any) -> AsyncIterator[tuple[str, NodeProcess]]:
    """tests/reliability/node_server.js: yields its URL and the process (killed on exit)."""
    proc = await NodeProcess.start(str(HERE / "node_server.js"), options)
    try:
        listening = await proc.expect("listening")
        yield f"http://127.0.0.1:{listening['port']}", proc
    finally:
        with contextlib.suppress(ProcessLookupError):  # a test may have killed it already
            proc.kill()
        await proc.proc.wait()


def host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[1].rstrip("/")
    host, port = rest.rsplit(":", 1)
    return host, int(port)

def ws_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True,
             rsv: int = 0, length: int | None = None) -> bytes:
    """One WebSocket frame; ``length`` overrides the announced payload length (to lie)."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def upgrade_request(host: str, port: int, target: str) -> tuple[bytes, str]:
    """A client's upgrade request and the Sec-WebSocket-Accept the server must answer."""
    key = base64.b64encode(os.urandom(16)).decode()
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    request = (f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode()
    return request, accept


class RawWs:
    """A hand-driven WebSocket client on a plain TCP connection: it does only what it is told."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, url: str, target: str = "/socket.io/?EIO=4&transport=websocket"
                      ) -> RawWs:
        host, port = host_port(url)
        reader, writer = await asyncio.open_connection(host, port)
        request, accept = upgrade_request(host, port, target)
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if not head.startswith(b"HTTP/1.1 101") or accept.encode() not in head:
            writer.close()
            raise AssertionError(f"no WebSocket upgrade: {head!r}")
        return cls(reader, writer)

    def send(self, opcode: int, payload: bytes, **kwargs: Any) -> None:
        self.writer.write(ws_frame(opcode, payload, **kwargs))

    def text(self, text: str) -> None:
        self.send(1, text.encode())

    async def frame(self, timeout: float = 10) -> tuple[int, bytes]:
        """The next frame from the server (servers do not mask)."""
        return await asyncio.wait_for(self._frame(), timeout)

    async def _frame(self) -> tuple[int, bytes]:
        b0, b1 = await self.reader.readexactly(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return b0 & 0x0F, await self.reader.readexactly(n)

    async def text_frame(self, timeout: float = 10) -> str:
        """The next text message, answering nothing on the way."""
        while True:
            opcode, payload = await self.frame(timeout)
            if opcode == 1:
                return payload.decode()
            if opcode == 8:
                raise ConnectionError(f"closed by the server: {payload!r}")

    async def closed(self, timeout: float = 10) -> bytes:
        """Everything the server still sends until it closes the TCP connection."""
        return await asyncio.wait_for(self.reader.read(), timeout)

    def close(self) -> None:
        self.writer.close()

class _LoopbackUpstream:
    """A raw TCP server on a free loopback port; subclasses say what a connection gets."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class RecordingUpstream(_LoopbackUpstream):
    """A TCP server that records every byte per connection and answers a canned reply once a
    request head has arrived: 101 for an upgrade request, else ``reply``."""

    def __init__(self, reply: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") -> None:
        super().__init__()
        self.reply = reply
        self.after_upgrade = b""  # sent right after the 101, for server->client fuzzing
        self.by_order: list[bytearray] = []  # what each connection delivered, in accept order

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        self.by_order.append(buf)
        answered = False
        try:
            while chunk := await reader.read(65536):
                buf += chunk
                if not answered and b"\r\n\r\n" in buf:
                    answered = True
                    writer.write(self._answer(bytes(buf)))
            with contextlib.suppress(OSError):
                writer.write_eof()
        except OSError:
            pass
        finally:
            writer.close()

    def _answer(self, head: bytes) -> bytes:
        lower = head.lower()
        if b"upgrade: websocket" not in lower:
            return self.reply
        key = b""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID.encode()).digest())
        return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                + self.after_upgrade)


class HangingFront(_LoopbackUpstream):
    """An upstream that accepts TCP and never answers the first ``hang`` connections; later
    ones are piped byte for byte to ``target`` (so one upstream can hang some clients only)."""

    def __init__(self, target: str, hang: int) -> None:
        super().__init__()
        self.target = host_port(target)
        self.hang = hang
        self.held: list[asyncio.StreamWriter] = []

    async def stop(self) -> None:
        for writer in self.held:
            writer.close()
        await super().stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self.held) < self.hang:
            # accepted and then silence: nothing read, nothing written, never closed by us
            self.held.append(writer)
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while chunk := await src.read(65536):
                    dst.write(chunk)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
