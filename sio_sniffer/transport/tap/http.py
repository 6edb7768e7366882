"""A passive HTTP/1.x parser for both directions of one relayed TCP connection (sans-IO).

It reads copies of bytes that have already been forwarded, so it never decides anything about the
traffic: it only reports complete requests and responses, pairs them by order (pipelining), and
notices when the connection switches protocol (a 101 answer to an ``Upgrade`` request, or a 2xx
answer to ``CONNECT``). It is written here rather than on top of httptools because a response
parser has to know the method of the request it answers (a response to HEAD has headers that
announce a body it does not carry), which llhttp's Python binding cannot be told.

Message framing follows RFC 9112 section 6:
- responses to HEAD, 1xx, 204 and 304 have no body;
- ``Transfer-Encoding`` ending in ``chunked`` means chunked (de-chunked here, trailers dropped);
- otherwise ``Content-Length``; otherwise a request has no body and a response runs until EOF.
A response whose framing cannot be trusted (conflicting lengths, bad chunk sizes, a header block
that never ends) raises :class:`HttpTapError`; the caller stops parsing that direction.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum, auto

from sio_sniffer.model.tap import (
    Direction,
    Headers,
    HttpAbandoned,
    HttpRequest,
    HttpResponse,
    TapEvent,
    header,
)
from sio_sniffer.transport.tap.errors import RAW_SNIPPET, TapParseError

# The tap keeps this much of a header block while waiting for its end; beyond it the peer is
# either not speaking HTTP or abusing it, and the tap gives up on the direction.
MAX_HEADER_BLOCK = 256 * 1024
_TOKEN_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_HEX_CHARS = frozenset(b"0123456789abcdefABCDEF")


class HttpTapError(TapParseError):
    """What passed is not HTTP/1.x the tap can follow (it was forwarded untouched all the same)."""


@dataclass(frozen=True, slots=True)
class Switch:
    """The connection stopped carrying HTTP after ``response`` answered ``request``.

    ``rest_in`` / ``rest_out`` are the bytes of each direction that followed the HTTP messages and
    belong to the new protocol. ``websocket`` is False for a CONNECT tunnel.
    """

    request: HttpRequest
    response: HttpResponse
    websocket: bool
    rest_in: bytes
    rest_out: bytes


class _Body(Enum):
    NONE = auto()
    LENGTH = auto()
    CHUNKED = auto()
    UNTIL_CLOSE = auto()


class _State(Enum):
    HEAD = auto()
    LENGTH = auto()
    CHUNK_SIZE = auto()
    CHUNK_DATA = auto()
    CHUNK_CRLF = auto()
    TRAILERS = auto()
    UNTIL_CLOSE = auto()
    AWAIT_SWITCH = auto()  # after an Upgrade/CONNECT request: the answer decides what follows
    SWITCHED = auto()


class _Pending:
    """A request whose headers were seen; the response side reads its method to frame the answer."""

    __slots__ = ("complete", "head", "parts", "size", "truncated")

    def __init__(self, head: HttpRequest) -> None:
        self.head = head
        self.parts: list[bytes] = []
        self.size = 0
        self.truncated = False
        self.complete: HttpRequest | None = None

    def snapshot(self) -> HttpRequest:
        """The request as far as it has been seen (a server may answer before the body ends)."""
        if self.complete is not None:
            return self.complete
        return _replace_body(self.head, b"".join(self.parts), self.truncated)


def _replace_body(req: HttpRequest, body: bytes, truncated: bool) -> HttpRequest:
    return HttpRequest(
        conn=req.conn, seq=req.seq, ts=req.ts, method=req.method, target=req.target,
        version=req.version, headers=req.headers, body=body, body_truncated=truncated,
    )


class _Reader:
    """Incremental framing of one direction: header block, then body by its framing rule."""

    def __init__(self, body_limit: int) -> None:
        self.buf = bytearray()
        self.consumed = 0  # stream offset of buf[0], for error reports
        self.state = _State.HEAD
        self.remaining = 0
        self.body_limit = body_limit
        self.parts: list[bytes] = []
        self.size = 0
        self.truncated = False

    def error(self, reason: str, at: int = 0) -> HttpTapError:
        return HttpTapError(reason, bytes(self.buf[at:at + RAW_SNIPPET]), self.consumed + at)

    def take(self, n: int) -> bytes:
        chunk = bytes(self.buf[:n])
        del self.buf[:n]
        self.consumed += n
        return chunk

    def keep(self, chunk: bytes) -> None:
        room = self.body_limit - self.size
        if room <= 0:
            self.truncated = self.truncated or bool(chunk)
            return
        if len(chunk) > room:
            chunk = chunk[:room]
            self.truncated = True
        self.parts.append(chunk)
        self.size += len(chunk)

    def take_body(self) -> tuple[bytes, bool]:
        body, truncated = b"".join(self.parts), self.truncated
        self.parts, self.size, self.truncated = [], 0, False
        return body, truncated

    def head_block(self) -> list[str] | None:
        """Split off a complete header block (leading CRLFs skipped); None if incomplete."""
        while self.buf[:2] == b"\r\n":
            self.take(2)
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEADER_BLOCK:
                raise self.error(f"header block longer than {MAX_HEADER_BLOCK} bytes")
            return None
        block = self.buf[:end].decode("latin-1")
        lines = block.split("\r\n")
        self.take(end + 4)
        return lines

    def body_step(self) -> bool:
        """Advance through the body; True when the message body is complete."""
        while True:
            if self.state is _State.LENGTH:
                n = min(self.remaining, len(self.buf))
                if n:
                    self.keep(self.take(n))
                    self.remaining -= n
                return self.remaining == 0
            if self.state is _State.UNTIL_CLOSE:
                if self.buf:
                    self.keep(self.take(len(self.buf)))
                return False
            if self.state is _State.CHUNK_SIZE:
                eol = self.buf.find(b"\r\n")
                if eol < 0:
                    if len(self.buf) > 4096:
                        raise self.error("chunk size line too long")
                    return False
                size_text = bytes(self.buf[:eol]).split(b";", 1)[0].strip()
                if not size_text or not set(size_text) <= _HEX_CHARS or len(size_text) > 16:
                    raise self.error(f"bad chunk size {size_text[:20]!r}")
                self.take(eol + 2)
                self.remaining = int(size_text, 16)
                self.state = _State.CHUNK_DATA if self.remaining else _State.TRAILERS
            elif self.state is _State.CHUNK_DATA:
                n = min(self.remaining, len(self.buf))
                if n:
                    self.keep(self.take(n))
                    self.remaining -= n
                if self.remaining:
                    return False
                self.state = _State.CHUNK_CRLF
            elif self.state is _State.CHUNK_CRLF:
                if len(self.buf) < 2:
                    return False
                if self.buf[:2] != b"\r\n":
                    raise self.error("chunk data not followed by CRLF")
                self.take(2)
                self.state = _State.CHUNK_SIZE
            elif self.state is _State.TRAILERS:
                if self.buf[:2] == b"\r\n":
                    self.take(2)
                    return True
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > MAX_HEADER_BLOCK:
                        raise self.error("trailer block too long")
                    return False
                self.take(end + 4)
                return True
            else:
                return True

    def start_body(self, framing: _Body, length: int) -> None:
        if framing is _Body.LENGTH:
            self.state, self.remaining = _State.LENGTH, length
        elif framing is _Body.CHUNKED:
            self.state = _State.CHUNK_SIZE
        elif framing is _Body.UNTIL_CLOSE:
            self.state = _State.UNTIL_CLOSE
        else:
            self.state, self.remaining = _State.LENGTH, 0


def _parse_headers(lines: list[str], reader: _Reader) -> Headers:
    headers: list[tuple[str, str]] = []
    for line in lines:
        if line[:1] in (" ", "\t") and headers:
            # obs-fold: a continuation line belongs to the previous header's value
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or not set(name.encode("latin-1")) <= _TOKEN_CHARS:
            raise reader.error(f"malformed header line {line[:60]!r}")
        headers.append((name, value.strip(" \t")))
    return tuple(headers)


def _framing(headers: Headers, reader: _Reader, *, request: bool) -> tuple[_Body, int]:
    te = header(headers, "transfer-encoding")
    if te is not None:
        if te.rsplit(",", 1)[-1].strip().lower() == "chunked":
            return _Body.CHUNKED, 0
        if request:
            raise reader.error(f"request Transfer-Encoding {te!r} does not end in chunked")
        return _Body.UNTIL_CLOSE, 0
    lengths = {v.strip() for k, v in headers if k.lower() == "content-length"}
    lengths = {part.strip() for v in lengths for part in v.split(",")}
    if lengths:
        if len(lengths) > 1 or not next(iter(lengths)).isdigit():
            raise reader.error(f"bad Content-Length {sorted(lengths)!r}")
        return _Body.LENGTH, int(next(iter(lengths)))
    return (_Body.NONE, 0) if request else (_Body.UNTIL_CLOSE, 0)


def _wants_switch(req: HttpRequest) -> bool:
    if req.method == "CONNECT":
        return True
    connection = header(req.headers, "connection") or ""
    return header(req.headers, "upgrade") is not None and "upgrade" in connection.lower()


class HttpTap:
    """Both directions of one connection: ``feed("in", ...)`` for requests, ``"out"`` for responses.

    ``feed`` and ``feed_eof`` return the events completed by that input and raise
    :class:`HttpTapError` for input the tap cannot follow. After a protocol switch, ``switch`` is
    set and the tap takes no more input.
    """

    def __init__(self, conn: str, body_limit: int) -> None:
        self.conn = conn
        self.switch: Switch | None = None
        self._requests = _Reader(body_limit)
        self._responses = _Reader(body_limit)
        self._pending: deque[_Pending] = deque()
        self._current_request: _Pending | None = None
        self._current_response: tuple[int, str, Headers, str] | None = None
        self._seq = 0
        self._body_limit = body_limit
        self._pairing = True

    def stop_pairing(self) -> None:
        """The response side is no longer parsed: stop keeping requests for it to pair with."""
        self._pairing = False
        self._pending.clear()

    def feed(self, dir: Direction, data: bytes, ts: float) -> list[TapEvent]:
        """Take a copy of bytes that passed in direction ``dir``; return completed messages."""
        if self.switch is not None:
            raise RuntimeError("the connection switched protocol; HTTP input has ended")
        events: list[TapEvent] = []
        try:
            if dir == "in":
                self._requests.buf += data
                if (self._requests.state is _State.AWAIT_SWITCH
                        and len(self._requests.buf) > self._body_limit):
                    raise self._requests.error("client sent too much before the upgrade answer")
                self._parse_requests(ts, events)
            else:
                self._responses.buf += data
                self._parse_responses(ts, events)
        except HttpTapError as exc:
            exc.events = events
            raise
        return events

    def feed_eof(self, dir: Direction, ts: float) -> list[TapEvent]:
        """The direction ended: a response that runs until close is complete now."""
        reader = self._requests if dir == "in" else self._responses
        if self.switch is not None:
            return []
        if dir == "out" and reader.state is _State.UNTIL_CLOSE and self._current_response:
            events: list[TapEvent] = []
            self._finish_response(ts, events)
            return events
        if reader.state is _State.AWAIT_SWITCH:
            return []
        if reader.state is not _State.HEAD or reader.buf.strip(b"\r\n"):
            what = "request" if dir == "in" else "response"
            raise reader.error(f"connection ended in the middle of a {what}")
        if dir == "in":
            return [HttpAbandoned(self.conn, ts, p.snapshot()) for p in self._pending]
        return []

    def _parse_requests(self, ts: float, events: list[TapEvent]) -> None:
        reader = self._requests
        while reader.state is not _State.AWAIT_SWITCH:
            if reader.state is _State.HEAD:
                lines = reader.head_block()
                if lines is None:
                    break
                parts = lines[0].split(" ")
                if len(parts) != 3 or not parts[2].startswith("HTTP/") or not parts[0] or not (
                    set(parts[0].encode("latin-1")) <= _TOKEN_CHARS
                ):
                    raise HttpTapError(
                        f"malformed request line {lines[0][:80]!r}",
                        "\r\n".join(lines)[:RAW_SNIPPET].encode("latin-1"),
                        reader.consumed,
                    )
                method, target, version = parts
                headers = _parse_headers(lines[1:], reader)
                framing, length = _framing(headers, reader, request=True)
                head = HttpRequest(
                    conn=self.conn, seq=self._seq, ts=ts, method=method, target=target,
                    version=version[5:], headers=headers, body=b"",
                )
                self._seq += 1
                pending = _Pending(head)
                if self._pairing:
                    self._pending.append(pending)
                self._current_request = pending
                reader.start_body(framing, length)
            done = reader.body_step()
            current = self._current_request
            assert current is not None
            current.parts, current.size, current.truncated = (
                reader.parts, reader.size, reader.truncated,
            )
            if not done:
                break
            body, truncated = reader.take_body()
            request = _replace_body(current.head, body, truncated)
            current.complete = request
            self._current_request = None
            events.append(request)
            reader.state = _State.AWAIT_SWITCH if _wants_switch(request) else _State.HEAD

    def _parse_responses(self, ts: float, events: list[TapEvent]) -> None:
        reader = self._responses
        while self.switch is None:
            if reader.state is _State.HEAD:
                lines = reader.head_block()
                if lines is None:
                    break
                parts = lines[0].split(" ", 2)
                if len(parts) < 2 or not parts[0].startswith("HTTP/") or not (
                    len(parts[1]) == 3 and parts[1].isdigit()
                ):
                    raise HttpTapError(
                        f"malformed status line {lines[0][:80]!r}",
                        "\r\n".join(lines)[:RAW_SNIPPET].encode("latin-1"),
                        reader.consumed,
                    )
                status = int(parts[1])
                reason = parts[2] if len(parts) > 2 else ""
                headers = _parse_headers(lines[1:], reader)
                if not self._pending:
                    raise HttpTapError(
                        f"response {status} without a request to answer",
                        "\r\n".join(lines)[:RAW_SNIPPET].encode("latin-1"),
                        reader.consumed,
                    )
                if 100 <= status < 200 and status != 101:
                    # interim answer (100 Continue, 103 Early Hints): the real one follows
                    continue
                method = self._pending[0].head.method
                self._current_response = (status, reason, headers, parts[0][5:])
                if method == "HEAD" or status in (101, 204, 304) or (
                    method == "CONNECT" and 200 <= status < 300
                ):
                    reader.start_body(_Body.NONE, 0)
                else:
                    framing, length = _framing(headers, reader, request=False)
                    reader.start_body(framing, length)
            if not reader.body_step():
                break
            self._finish_response(ts, events)

    def _finish_response(self, ts: float, events: list[TapEvent]) -> None:
        assert self._current_response is not None
        status, reason, headers, _version = self._current_response
        self._current_response = None
        body, truncated = self._responses.take_body()
        self._responses.state = _State.HEAD
        pending = self._pending.popleft()
        request = pending.snapshot()
        response = HttpResponse(
            conn=self.conn, seq=request.seq, ts=ts, status=status, reason=reason,
            headers=headers, body=body, request=request, body_truncated=truncated,
        )
        events.append(response)
        switching = self._requests.state is _State.AWAIT_SWITCH and not self._pending
        websocket = status == 101 and header(headers, "upgrade") is not None
        tunnel = request.method == "CONNECT" and 200 <= status < 300
        if switching and (websocket or tunnel):
            rest_in = bytes(self._requests.buf)
            rest_out = bytes(self._responses.buf)
            self._requests.buf.clear()
            self._responses.buf.clear()
            self._requests.state = self._responses.state = _State.SWITCHED
            self.switch = Switch(request, response, websocket, rest_in, rest_out)
        elif switching:
            # the server declined the upgrade: the client's next bytes are HTTP again
            self._requests.state = _State.HEAD
            self._parse_requests(ts, events)
