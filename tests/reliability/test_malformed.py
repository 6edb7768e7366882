"""Malformed HTTP and WebSocket input against real servers: through the sniffer the server gets
it untouched and the client gets the server's own answer, the same as without the sniffer."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from tests.reliability.rel_peers import RawWs, host_port, node, sniffing, ws_frame

HTTP_CASES = {
    "bad request line": b"GARBAGE\r\n\r\n",
    "huge header": b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\nX-Big: "
                   + b"a" * 100_000 + b"\r\n\r\n",
    "bad chunking": b"POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n",
    "bad content-length": b"POST /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: -5\r\n\r\n",
}
WS_CASES = {
    "reserved opcode": ws_frame(3, b"x"),
    "lying length": ws_frame(2, b"abc", length=2**63 + 1),
    "invalid utf-8": ws_frame(1, b'42["\xff\xfe"]'),
    "oversize control": ws_frame(9, b"p" * 200),
    "unmasked": ws_frame(1, b"3", mask=False),
}


@asynccontextmanager
async def server(kind: str, py_server_factory: Any) -> AsyncIterator[str]:
    if kind == "node":
        async with node() as (url, _proc):
            yield url
    else:
        yield (await py_server_factory()).url


async def _http_answer(url: str, data: bytes) -> bytes:
    """The status line and body the server answers ``data`` with (headers vary by date)."""
    reader, writer = await asyncio.open_connection(*host_port(url))
    writer.write(data)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    raw = b""
    with contextlib.suppress(asyncio.TimeoutError, ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(65536), 3):
            raw += chunk
            if b"\r\n\r\n" in raw and _complete(raw):
                break
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0] + b"\n" + body


def _complete(raw: bytes) -> bool:
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


@pytest.mark.parametrize("case", sorted(HTTP_CASES))
@pytest.mark.parametrize("kind", ["node", "python"])
async def test_malformed_http(kind: str, case: str, py_server_factory: Any) -> None:
    """Malformed HTTP gets the same answer from the server through the sniffer as directly."""
    data = HTTP_CASES[case]
    async with server(kind, py_server_factory) as url, sniffing(url) as (sniffer, records):
        direct = await _http_answer(url, data)
        proxied = await _http_answer(sniffer.url, data)
        assert direct.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")), direct
        assert proxied == direct
        await records.wait("conn.close")


async def _ws_answer(url: str, frame: bytes) -> bytes | None:
    """The close frame payload (code + reason) the server answers ``frame`` with; None when it
    just drops the connection."""
    ws = await RawWs.connect(url)
    try:
        assert (await ws.text_frame()).startswith("0")
        ws.writer.write(frame)
        while True:
            try:
                opcode, payload = await ws.frame(5)
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            if opcode == 8:
                return payload
    finally:
        ws.close()


@pytest.mark.parametrize("case", sorted(WS_CASES))
@pytest.mark.parametrize("kind", ["node", "python"])
async def test_malformed_websocket(kind: str, case: str, py_server_factory: Any) -> None:
    """A frame that breaks the WebSocket rules gets the server's own close (same code as
    without the sniffer); the sniffer records what it could not parse and carries on."""
    async with server(kind, py_server_factory) as url, sniffing(url) as (sniffer, records):
        direct = await _ws_answer(url, WS_CASES[case])
        proxied = await _ws_answer(sniffer.url, WS_CASES[case])
        code = struct.unpack("!H", proxied[:2])[0] if proxied else None
        assert (proxied[:2] if proxied else None) == (direct[:2] if direct else None), code
        await records.wait("conn.close")
        ws = await RawWs.connect(sniffer.url)
        assert (await ws.text_frame()).startswith("0")
        ws.close()
