"""The tap's parsers fed directly (sans-IO): HTTP framing rules and RFC 6455/7692 frames."""

from __future__ import annotations

import itertools
import zlib

from hypothesis import given
from hypothesis import strategies as st

from sio_sniffer.model.tap import (
    HttpRequest,
    HttpResponse,
    TapError,
    TapEvent,
    WsControl,
    WsMessage,
    WsOpen,
)
from sio_sniffer.transport.tap.connection import ConnectionTap
from sio_sniffer.transport.tap.http import HttpTap
from sio_sniffer.transport.tap.ws import Deflate, WsFrameParser, negotiated_deflate

LIMIT = 1 << 20


def feed_all(tap: ConnectionTap, chunks: list[tuple[str, bytes]]) -> None:
    for dir, data in chunks:
        tap.data(dir, data)  # type: ignore[arg-type]


def connection() -> tuple[ConnectionTap, list[TapEvent]]:
    events: list[TapEvent] = []
    return ConnectionTap("c1", events.append, LIMIT, lambda: 1.0), events


def test_head_204_304_and_interim_responses_carry_no_body() -> None:
    """HEAD, 204 and 304 answers end at their headers; a 100 Continue is not the answer."""
    http = HttpTap("c1", LIMIT)
    requests = (b"HEAD /a HTTP/1.1\r\nHost: h\r\n\r\n"
                b"DELETE /b HTTP/1.1\r\nHost: h\r\n\r\n"
                b"GET /c HTTP/1.1\r\nHost: h\r\n\r\n"
                b"POST /d HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc")
    assert [e.method for e in http.feed("in", requests, 1.0)  # type: ignore[union-attr]
            ] == ["HEAD", "DELETE", "GET", "POST"]
    responses = (b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
                 b"HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\n"
                 b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"
                 b"HTTP/1.1 100 Continue\r\n\r\n"
                 b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok")
    events = http.feed("out", responses, 2.0)
    assert [(e.status, e.body, e.request.target) for e in events  # type: ignore[union-attr]
            ] == [(200, b"", "/a"), (204, b"", "/b"), (304, b"", "/c"), (201, b"ok", "/d")]


def test_response_without_length_runs_until_eof() -> None:
    """A response with neither length nor chunking is complete when the server's side ends."""
    http = HttpTap("c1", LIMIT)
    http.feed("in", b"GET / HTTP/1.0\r\n\r\n", 1.0)
    assert http.feed("out", b"HTTP/1.0 200 OK\r\n\r\npart one, ", 2.0) == []
    assert http.feed("out", b"part two", 2.0) == []
    (response,) = http.feed_eof("out", 3.0)
    assert isinstance(response, HttpResponse) and response.body == b"part one, part two"


def test_bodies_over_the_limit_are_truncated_on_the_copy_only() -> None:
    """The tap keeps at most its limit of a body and says so; framing continues past it."""
    http = HttpTap("c1", 10)
    body = b"0123456789abcdef"
    raw = (b"POST / HTTP/1.1\r\nContent-Length: 16\r\n\r\n" + body
           + b"GET /next HTTP/1.1\r\n\r\n")
    first, second = http.feed("in", raw, 1.0)
    assert isinstance(first, HttpRequest) and isinstance(second, HttpRequest)
    assert (first.body, first.body_truncated) == (b"0123456789", True)
    assert second.target == "/next"


def test_declined_upgrade_goes_on_as_http() -> None:
    """An Upgrade request answered 400 is an ordinary exchange; the next request parses."""
    tap, events = connection()
    feed_all(tap, [
        ("in", b"GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
        ("in", b"GET /after HTTP/1.1\r\n\r\n"),
        ("out", b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
        ("out", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ])
    assert [(e.status, e.request.target) for e in events if isinstance(e, HttpResponse)] == [
        (400, "/ws"), (200, "/after")]
    assert not any(isinstance(e, (WsOpen, TapError)) for e in events)


def upgrade_exchange(extensions: str = "") -> list[tuple[str, bytes]]:
    ext = f"Sec-WebSocket-Extensions: {extensions}\r\n".encode() if extensions else b""
    return [
        ("in", b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: h\r\n"
               b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
        ("out", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n" + ext + b"\r\n"),
    ]


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None,
          rsv1: bool = False) -> bytes:
    """One RFC 6455 frame, built independently of the parser under test."""
    head = bytes([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + n.to_bytes(8, "big")
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


def test_rfc6455_examples() -> None:
    """The frames of RFC 6455 section 5.7 decode to their messages and controls."""
    parser = WsFrameParser("c1", "out", None, LIMIT)
    wire = bytes.fromhex(
        "810548656c6c6f"  # single-frame unmasked text "Hello"
        "010348656c" "80026c6f"  # fragmented unmasked text "Hel" + "lo"
        "890548656c6c6f"  # unmasked ping "Hello"
    )
    events = parser.feed(wire, 1.0)
    masked = WsFrameParser("c1", "in", None, LIMIT).feed(
        bytes.fromhex("818537fa213d7f9f4d5158"), 1.0)  # masked text "Hello"
    assert [(type(e).__name__, e.opcode, e.payload) for e in events] == [  # type: ignore[union-attr]
        ("WsMessage", 1, b"Hello"), ("WsMessage", 1, b"Hello"), ("WsControl", 9, b"Hello")]
    assert [(e.payload, e.wire_size) for e in masked] == [(b"Hello", 11)]  # type: ignore[union-attr]


def test_rfc7692_deflate_with_and_without_context_takeover() -> None:
    """RFC 7692 7.2.3: "Hello" twice with a shared window, and each message on its own."""
    hello = bytes.fromhex("f248cdc9c90700")
    hello_again = bytes.fromhex("f200110000")  # refers back to the first message's window
    shared = WsFrameParser("c1", "out", Deflate(), LIMIT)
    events = shared.feed(frame(1, hello, rsv1=True) + frame(1, hello_again, rsv1=True), 1.0)
    assert [e.payload for e in events] == [b"Hello", b"Hello"]  # type: ignore[union-attr]
    fresh = WsFrameParser("c1", "in", Deflate(client_no_context_takeover=True), LIMIT)
    events = fresh.feed(frame(1, hello, rsv1=True, mask=b"abcd") * 2, 1.0)
    assert [e.payload for e in events] == [b"Hello", b"Hello"]  # type: ignore[union-attr]


def test_negotiated_deflate_reads_the_servers_answer() -> None:
    """The 101's Sec-WebSocket-Extensions decides deflate and context takeover per direction."""
    assert negotiated_deflate(None) is None
    assert negotiated_deflate("x-webkit-other") is None
    assert negotiated_deflate("permessage-deflate; client_max_window_bits=10") == Deflate()
    assert negotiated_deflate(
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    ) == Deflate(client_no_context_takeover=True, server_no_context_takeover=True)


def test_close_codes_and_fragmented_compressed_message_through_the_connection_tap() -> None:
    """After the 101, both directions parse frames: close code and reason, fragments inflated."""
    tap, events = connection()
    deflater = zlib.compressobj(wbits=-15)
    message = b'42["big",' + b'"x"' * 3000 + b"]"
    body = deflater.compress(message) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    body = body[:-4]
    feed_all(tap, [
        *upgrade_exchange("permessage-deflate"),
        ("out", frame(1, body[:5], fin=False, rsv1=True)),
        ("out", frame(9, b"mid-message ping")),
        ("out", frame(0, body[5:])),
        ("in", frame(8, (4001).to_bytes(2, "big") + "bye é".encode(), mask=b"\x01\x02\x03\x04")),
    ])
    (opened,) = [e for e in events if isinstance(e, WsOpen)]
    assert opened.deflate and opened.request.target.endswith("transport=websocket")
    messages = [e for e in events if isinstance(e, WsMessage)]
    assert [(m.dir, m.payload) for m in messages] == [("out", message)]
    assert messages[0].wire_size < len(message) / 10
    controls = [(c.dir, c.opcode, c.close_code, c.close_reason)
                for c in events if isinstance(c, WsControl)]
    assert controls == [("out", 9, None, ""), ("in", 8, 4001, "bye é")]


def test_malformed_frames_turn_the_direction_raw_and_say_why() -> None:
    """A reserved opcode is a TapError; that direction stops parsing, the other goes on."""
    tap, events = connection()
    feed_all(tap, [
        *upgrade_exchange(),
        ("in", frame(3, b"??", mask=b"abcd")),
        ("in", frame(1, b"never parsed", mask=b"abcd")),
        ("out", frame(1, b"still parsed")),
    ])
    errors = [e for e in events if isinstance(e, TapError)]
    assert [(e.dir, e.layer, e.reason) for e in errors] == [
        ("in", "websocket", "reserved opcode 3")]
    assert [e.payload for e in events if isinstance(e, WsMessage)] == [b"still parsed"]
    assert tap.mode == {"in": "raw", "out": "websocket"}


def test_chunked_with_bad_size_is_a_tap_error() -> None:
    """A chunk size that is not hex cannot be followed: TapError with the offending bytes."""
    tap, events = connection()
    feed_all(tap, [("in", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")])
    (error,) = events
    assert isinstance(error, TapError) and error.reason == "bad chunk size b'zz'"
    assert error.raw.startswith(b"zz") and error.offset == 47


STREAM = [
    *upgrade_exchange("permessage-deflate; server_no_context_takeover"),
    ("in", frame(1, b"40", mask=b"\x00\xff\x10\x20")),
    ("out", frame(1, bytes.fromhex("f248cdc9c90700"), rsv1=True)),
    ("out", frame(2, bytes(range(256)) * 300)),
    ("out", frame(2, b"\x01" * 300)),
    ("in", frame(1, b"m" * 200, mask=b"\x05\x06\x07\x08")),
    ("in", frame(2, b"\x00" * 70000, mask=b"wxyz")),
    ("in", frame(1, b"frag-", fin=False, mask=b"abcd")),
    ("in", frame(10, b"pong", mask=b"abcd")),
    ("in", frame(0, b"ment", mask=b"efgh")),
    ("out", frame(8, (1000).to_bytes(2, "big"))),
]


def run(cuts: list[int]) -> list[TapEvent]:
    """STREAM fed with each direction's bytes cut at the given positions."""
    tap, events = connection()
    for dir, data in STREAM:
        points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
        for a, b in itertools.pairwise(points):
            tap.data(dir, data[a:b])  # type: ignore[arg-type]
    return events


@given(st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=6))
def test_how_bytes_are_cut_into_reads_changes_nothing(cuts: list[int]) -> None:
    """Any split of the stream into reads yields the same events (timestamps aside)."""
    whole = run([])
    assert run(cuts) == whole
    assert [type(e).__name__ for e in whole].count("WsMessage") == 7
    assert not any(isinstance(e, TapError) for e in whole)
