"""Property tests against the running proxy: random and mutated Engine.IO/Socket.IO traffic goes
through byte for byte, the sniffer never stops, and malformed input gives decode_error records
with the codec's reason."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sio_sniffer.codec.stream import ErrorItem, SessionDecoder
from tests.reliability.fuzz_harness import FuzzProxy
from tests.reliability.rel_peers import ws_frame

EIO_TYPES = "0123456b"
SIO_TYPES = "0123456"
JSON_BITS = ['["ev",1]', '["ev",{"a":[1,2]}]', "{}", '{"token":"x"}', "[", "]", '"s"', "null",
             '[{"_placeholder":true,"num":0}]', "1e999", "[[[[[[[[", '"\\ud800"', "-"]
SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture(scope="module")
def proxy() -> Iterator[FuzzProxy]:
    harness = FuzzProxy()
    harness.start()
    yield harness
    harness.stop()


@st.composite
def sio_packet(draw: st.DrawFn) -> str:
    """Something shaped like an Engine.IO packet carrying Socket.IO, often slightly wrong."""
    text = draw(st.sampled_from(EIO_TYPES))
    if text == "4" or draw(st.booleans()):
        text += draw(st.sampled_from(SIO_TYPES))
        if draw(st.booleans()):
            text += f"{draw(st.integers(0, 3))}-"
        if draw(st.booleans()):
            text += draw(st.sampled_from(["/admin,", "/a?x=1,", "/", ","]))
        if draw(st.booleans()):
            text += str(draw(st.integers(0, 10**20)))
        text += "".join(draw(st.lists(st.sampled_from(JSON_BITS), max_size=3)))
    return text


@st.composite
def mutated(draw: st.DrawFn, inner: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(inner))
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, len(data)))
        if op == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos:pos + draw(st.integers(1, 8))]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


polling_bodies = st.one_of(
    st.binary(max_size=300),
    mutated(st.lists(sio_packet(), min_size=1, max_size=4).map(
        lambda ps: "\x1e".join(ps).encode())),
)


_SIDS = itertools.count()


@SETTINGS
@given(body=polling_bodies, chunk=st.sampled_from([0, 1, 7]))
def test_polling_bodies(proxy: FuzzProxy, body: bytes, chunk: int) -> None:
    """A polling POST with any body reaches the upstream byte for byte, its answer comes back,
    and each decode problem the codec finds in the body is a decode_error record."""
    # A session of its own per example: the sniffer keeps a session's decoder state (pending
    # attachments) between requests, and the expectation below starts from a fresh decoder.
    sid = f"fuzz{next(_SIDS)}"
    head = (f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n\r\n")
    probe = proxy.probe(head.encode() + body, chunk=chunk)
    assert probe.upstream_got == probe.sent
    assert probe.client_got == proxy.upstream.reply
    expected = [i.error.reason for i in SessionDecoder().polling("in", body, "text/plain")
                if isinstance(i, ErrorItem)]
    got = [r.get("reason") for r in probe.decode_errors()]
    event(f"decode errors: {min(len(got), 2)}")
    assert got == expected
    assert all(isinstance(r, str) and r for r in got)
    assert proxy.alive(), proxy.problems


@st.composite
def good_frames(draw: st.DrawFn) -> list[tuple[int, bytes]]:
    """Well-formed client messages: text (valid UTF-8) or binary, any content."""
    out: list[tuple[int, bytes]] = []
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            out.append((1, draw(sio_packet()).encode()))
        else:
            out.append((2, draw(st.binary(max_size=64))))
    return out


@SETTINGS
@given(messages=good_frames(), reply=st.binary(max_size=200))
def test_websocket_messages(proxy: FuzzProxy, messages: list[tuple[int, bytes]],
                            reply: bytes) -> None:
    """Well-formed WebSocket frames with odd Engine.IO/Socket.IO content pass both ways byte
    for byte, and the decode_error records are exactly the codec's findings."""
    data = b"".join(ws_frame(op, payload) for op, payload in messages)
    probe = proxy.probe(data, upgrade="/socket.io/?EIO=4&transport=websocket", reply=reply)
    assert probe.upstream_got == probe.sent
    assert probe.client_got.endswith(b"\r\n\r\n" + reply)
    decoder = SessionDecoder()
    expected = [i.error.reason for op, payload in messages
                for i in decoder.websocket("in", payload, op == 1) if isinstance(i, ErrorItem)]
    got = [r.get("reason") for r in probe.decode_errors()
           if r.dir == "in" and r.get("layer") != "websocket"]
    event(f"decode errors: {min(len(got), 2)}")
    assert got == expected
    assert proxy.alive(), proxy.problems


@st.composite
def bad_frames(draw: st.DrawFn) -> bytes:
    """Frames that break the WebSocket rules: reserved opcodes, RSV bits, unmasked client
    frames, lying lengths, invalid UTF-8, oversize or fragmented control frames, junk."""
    kind = draw(st.sampled_from(["opcode", "rsv", "unmasked", "length", "utf8", "control",
                                 "fragmented_control", "junk"]))
    payload = draw(st.binary(max_size=40))
    if kind == "opcode":
        return ws_frame(draw(st.sampled_from([3, 4, 5, 6, 7, 11, 12, 13, 14, 15])), payload)
    if kind == "rsv":
        return ws_frame(1, b"4x", rsv=draw(st.integers(1, 7)))
    if kind == "unmasked":
        return ws_frame(1, b'42["a"]', mask=False)
    if kind == "length":
        return ws_frame(2, payload, length=draw(st.sampled_from([2**63 + 5, 2**40, 70000])))
    if kind == "utf8":
        return ws_frame(1, b"42[\"\xff\xfe\"]")
    if kind == "control":
        return ws_frame(draw(st.sampled_from([8, 9, 10])), b"p" * 200)
    if kind == "fragmented_control":
        return ws_frame(9, b"ping", fin=False)
    return draw(st.binary(min_size=1, max_size=200))


@SETTINGS
@given(frames=st.lists(bad_frames(), min_size=1, max_size=3))
def test_malformed_websocket_frames(proxy: FuzzProxy, frames: list[bytes]) -> None:
    """Frames that break the WebSocket protocol still reach the upstream byte for byte; the
    sniffer keeps running and says what it could not parse."""
    probe = proxy.probe(b"".join(frames), upgrade="/socket.io/?EIO=4&transport=websocket")
    assert probe.upstream_got == probe.sent
    event(f"decode errors: {min(len(probe.decode_errors()), 2)}")
    assert all(r.get("reason") for r in probe.decode_errors())
    assert proxy.alive(), proxy.problems


@SETTINGS
@given(data=st.one_of(
    st.binary(max_size=400),
    mutated(st.sampled_from([
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
        b"POST /socket.io/?EIO=4&sid=a HTTP/1.1\r\nContent-Length: 3\r\n\r\n40{",
    ])),
))
def test_any_bytes_as_http(proxy: FuzzProxy, data: bytes) -> None:
    """Whatever a client sends as HTTP (valid, mutated, random) reaches the upstream unchanged
    and the upstream's answer comes back; every decode_error names its reason."""
    probe = proxy.probe(data)
    assert probe.upstream_got == data
    if b"\r\n\r\n" in data:
        assert probe.client_got == proxy.upstream.reply
    assert all(r.get("reason") for r in probe.decode_errors())
    assert proxy.alive(), proxy.problems
