"""What the transport's passive tap reports: copies of traffic that has already been forwarded.

These are the only things that cross from the transport layer to the rest of the pipeline, and
the capture file stores exactly these, so a capture can be re-analysed offline (replay, report)
by feeding the same objects to the same pipeline. Everything is immutable and plain data.

Direction words follow the Socket.IO point of view: ``in`` is client→server, ``out`` is
server→client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["in", "out"]
Headers = tuple[tuple[str, str], ...]


def header(headers: Headers, name: str) -> str | None:
    """First value of a header, case-insensitive (HTTP header names are)."""
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return None


@dataclass(frozen=True, slots=True)
class ConnOpen:
    """A client opened a TCP connection to the proxy (and the proxy opened one upstream)."""

    conn: str
    ts: float
    peer: str
    tls: bool = False


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A complete HTTP/1.x request as the client sent it (body de-chunked)."""

    conn: str
    seq: int  # position of this request on its TCP connection (pipelining pairs by order)
    ts: float
    method: str
    target: str  # raw request target: path and query exactly as sent
    version: str
    headers: Headers
    body: bytes
    body_truncated: bool = False  # the tap keeps at most a configured size; forwarding is never cut


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete HTTP/1.x response, paired with the request it answers."""

    conn: str
    seq: int
    ts: float
    status: int
    reason: str
    headers: Headers
    body: bytes  # de-chunked and, when Content-Encoding is gzip/deflate, still encoded
    request: HttpRequest
    body_truncated: bool = False


@dataclass(frozen=True, slots=True)
class HttpAbandoned:
    """The client ended its side of the connection with ``request`` still unanswered: it gave up
    waiting (an HTTP/1.1 client does not half-close while it waits for an answer)."""

    conn: str
    ts: float
    request: HttpRequest


@dataclass(frozen=True, slots=True)
class WsOpen:
    """The server answered 101: from here the connection carries WebSocket frames."""

    conn: str
    ts: float
    request: HttpRequest
    response_headers: Headers
    deflate: bool  # permessage-deflate was negotiated


@dataclass(frozen=True, slots=True)
class WsMessage:
    """One complete WebSocket data message (fragments joined, inflated when compressed)."""

    conn: str
    ts: float
    dir: Direction
    opcode: int  # 1 text, 2 binary
    payload: bytes
    wire_size: int  # bytes it took on the wire, frame headers included


@dataclass(frozen=True, slots=True)
class WsControl:
    """A WebSocket control frame: close (8), ping (9) or pong (10)."""

    conn: str
    ts: float
    dir: Direction
    opcode: int
    payload: bytes
    close_code: int | None = None
    close_reason: str = ""


@dataclass(frozen=True, slots=True)
class ConnClose:
    """A TCP connection ended. ``by`` says which side ended it first."""

    conn: str
    ts: float
    by: Literal["client", "server", "proxy"]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TapError:
    """The tap could not parse what passed (it was forwarded untouched all the same)."""

    conn: str
    ts: float
    dir: Direction
    layer: Literal["http", "websocket"]
    reason: str
    raw: bytes
    offset: int = 0


@dataclass(frozen=True, slots=True)
class UpstreamError:
    """The proxy could not reach the upstream for this client connection (client got a 502)."""

    conn: str
    ts: float
    url: str
    reason: str


TapEvent = (ConnOpen | HttpRequest | HttpResponse | HttpAbandoned | WsOpen | WsMessage
            | WsControl | ConnClose | TapError | UpstreamError)
