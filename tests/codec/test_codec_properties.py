"""Property tests: valid packets round-trip, and no input makes a decoder raise."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sio_sniffer.codec import (
    CodecError,
    DecodeError,
    EioPacket,
    EioType,
    SessionDecoder,
    SioDecoder,
    SioPacket,
    SioType,
    decode_eio_packet,
    decode_polling_payload,
    encode_eio_packet,
    encode_polling_payload,
    encode_sio_packet,
    encode_xhr2_payload,
)

# JSON as JavaScript produces it: finite floats, 53-bit integers, any Unicode text.
text = st.text(st.characters(codec="utf-8"), max_size=20)
scalars = (st.none() | st.booleans() | st.integers(-(2**53), 2**53) | text
           | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    scalars,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(text, kids, max_size=4),
    max_leaves=12)
with_bytes = st.recursive(
    scalars | st.binary(max_size=8),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        text.filter(lambda k: k not in ("_placeholder", "num")), kids, max_size=4),
    max_leaves=12)
namespaces = st.just("/") | st.from_regex(r"/[a-z0-9_-]{1,10}", fullmatch=True)
ack_ids = st.none() | st.integers(0, 2**53)


@st.composite
def sio_packets(draw: st.DrawFn) -> SioPacket:
    kind = draw(st.sampled_from(["connect", "disconnect", "event", "ack", "error"]))
    nsp = draw(namespaces)
    if kind == "connect":
        auth = draw(st.none() | st.dictionaries(text, json_values, max_size=3))
        return SioPacket(SioType.CONNECT, nsp, auth)
    if kind == "disconnect":
        return SioPacket(SioType.DISCONNECT, nsp)
    if kind == "error":
        payload = draw(text | st.dictionaries(text, json_values, max_size=3))
        return SioPacket(SioType.CONNECT_ERROR, nsp, payload)
    args = draw(st.lists(with_bytes, max_size=4))
    if kind == "event":
        return SioPacket(SioType.EVENT, nsp, [draw(text), *args], draw(ack_ids))
    return SioPacket(SioType.ACK, nsp, args, draw(st.integers(0, 2**53)))


def _count(value: Any) -> int:
    if isinstance(value, bytes):
        return 1
    if isinstance(value, list):
        return sum(_count(v) for v in value)
    if isinstance(value, dict):
        return sum(_count(v) for v in value.values())
    return 0


@settings(max_examples=300, deadline=None)
@given(sio_packets())
def test_socketio_text_round_trip(pkt: SioPacket) -> None:
    """Any valid packet encodes and decodes back, binary ones through BINARY_* + attachments."""
    decoder = SioDecoder()
    got = [p for m in encode_sio_packet(pkt) for p in decoder.feed(m)]
    n = _count(pkt.data)
    ptype = pkt.type
    if n:
        ptype = SioType.BINARY_EVENT if ptype == SioType.EVENT else SioType.BINARY_ACK
    assert got == [SioPacket(ptype, pkt.namespace, pkt.data, pkt.id, n)]


@settings(max_examples=200, deadline=None)
@given(sio_packets())
def test_socketio_msgpack_round_trip(pkt: SioPacket) -> None:
    """Any valid packet survives the msgpack parser's encoding, detected automatically."""
    decoder = SioDecoder()
    got = [p for m in encode_sio_packet(pkt, msgpack=True) for p in decoder.feed(m)]
    assert got == [pkt]


eio_packets = st.builds(
    EioPacket, st.sampled_from(list(EioType)),
    text.filter(lambda t: "\x1e" not in t)) | st.builds(
    EioPacket, st.just(EioType.MESSAGE), st.binary(max_size=16))


@settings(max_examples=300, deadline=None)
@given(st.lists(eio_packets, min_size=1, max_size=6))
def test_engineio_payload_round_trip(pkts: list[EioPacket]) -> None:
    """Packet lists round-trip through v4 payloads, v3 text payloads, v3 XHR2 payloads and
    single WebSocket frames."""
    assert decode_polling_payload(encode_polling_payload(pkts)) == pkts
    assert decode_polling_payload(encode_polling_payload(pkts, eio=3), eio=3) == pkts
    assert decode_polling_payload(encode_xhr2_payload(pkts), eio=3) == pkts
    for pkt in pkts:
        assert decode_eio_packet(encode_eio_packet(pkt)) == pkt
        assert decode_eio_packet(encode_eio_packet(pkt, eio=3), eio=3) == pkt


junk_text = st.text(max_size=60) | st.from_regex(
    r"[0-6b][0-9-]{0,3}(/[a-z,?]{0,5})?[0-9a-z]{0,3}[\[{\"].{0,20}", fullmatch=True)
junk_bytes = st.binary(max_size=80) | junk_text.map(lambda s: s.encode("utf-8", "surrogatepass"))


@settings(max_examples=500, deadline=None)
@given(st.lists(junk_text | st.binary(max_size=40), max_size=6))
def test_sio_decoder_never_raises(messages: list[str | bytes]) -> None:
    """Random messages in any order only ever yield packets or DecodeErrors."""
    decoder = SioDecoder()
    for m in messages:
        for item in decoder.feed(m):
            assert isinstance(item, (SioPacket, DecodeError))
    for item in decoder.flush():
        assert isinstance(item, DecodeError)


@settings(max_examples=500, deadline=None)
@given(junk_bytes, st.sampled_from([3, 4]),
       st.sampled_from([None, "application/octet-stream", "application/x-www-form-urlencoded"]))
def test_payload_decoder_never_raises(body: bytes, eio: int, content_type: str | None) -> None:
    """Random polling bodies only ever yield packets or DecodeErrors."""
    for item in decode_polling_payload(body, eio, content_type):
        assert isinstance(item, (EioPacket, DecodeError))


@settings(max_examples=300, deadline=None)
@given(junk_text | st.binary(max_size=40), st.sampled_from([3, 4]))
def test_packet_decoder_raises_only_codec_error(data: str | bytes, eio: int) -> None:
    """decode_eio_packet returns a packet or raises CodecError, nothing else."""
    try:
        assert isinstance(decode_eio_packet(data, eio), EioPacket)
    except CodecError as exc:
        assert isinstance(exc.error, DecodeError)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["in", "out"]), st.sampled_from(["poll", "ws", "bin"]),
                          junk_bytes), max_size=8), st.sampled_from([3, 4]))
def test_session_decoder_never_raises(steps: list[tuple[str, str, bytes]], eio: int) -> None:
    """Random bodies and frames fed to a session decoder never raise."""
    dec = SessionDecoder(eio=eio)
    for dir, how, data in steps:
        if how == "poll":
            dec.polling(dir, data)  # type: ignore[arg-type]
        else:
            dec.websocket(dir, data, text=how == "ws")  # type: ignore[arg-type]
    dec.close()
