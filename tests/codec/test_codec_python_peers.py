"""The codec against python-engineio's and python-socketio's own encoders and decoders."""

from __future__ import annotations

from typing import Any

import engineio.packet
import engineio.payload
import pytest
import socketio.msgpack_packet
import socketio.packet

from sio_sniffer.codec import (
    EioPacket,
    EioType,
    SioDecoder,
    SioPacket,
    SioType,
    decode_eio_packet,
    decode_polling_payload,
    encode_eio_packet,
    encode_polling_payload,
    encode_sio_packet,
)

SIO_CASES: list[tuple[int, Any, str | None, int | None]] = [
    (socketio.packet.CONNECT, None, None, None),
    (socketio.packet.CONNECT, {"token": "s3cr3t"}, "/admin", None),
    (socketio.packet.CONNECT, {"sid": "Y5x2kd"}, "/admin", None),
    (socketio.packet.DISCONNECT, None, "/admin", None),
    (socketio.packet.EVENT, ["chat", {"text": "hi", "n": [1, 2.5, None, True]}], None, None),
    (socketio.packet.EVENT, ["chat", "é€😀"], "/admin", 17),
    (socketio.packet.ACK, ["ok", 1], None, 17),
    (socketio.packet.ACK, [], "/admin", 0),
    (socketio.packet.CONNECT_ERROR, "Unable to connect", "/nope", None),
    (socketio.packet.CONNECT_ERROR, {"message": "denied", "data": {"code": 4}}, None, None),
    (socketio.packet.EVENT, ["bin", b"\x00\x01", {"deep": [b"\xff", {"x": b""}]}], "/b", 3),
    (socketio.packet.ACK, [b"\x01\x02", "tail"], None, 4),
]


def _expected(ptype: int, data: Any, nsp: str | None, ack: int | None) -> SioPacket:
    found = _count(data)
    if found and ptype in (socketio.packet.EVENT, socketio.packet.ACK):
        ptype = ptype + 3  # python-socketio turns EVENT/ACK with bytes into BINARY_*
    return SioPacket(SioType(ptype), nsp or "/", data, ack, found)


def _count(value: Any) -> int:
    if isinstance(value, bytes):
        return 1
    if isinstance(value, list):
        return sum(_count(v) for v in value)
    if isinstance(value, dict):
        return sum(_count(v) for v in value.values())
    return 0


@pytest.mark.parametrize("case", SIO_CASES, ids=lambda c: f"{c[0]}{c[2] or '/'}")
def test_decodes_python_socketio_packets(case: tuple[int, Any, str | None, int | None]) -> None:
    """Whatever python-socketio's Packet.encode produces (attachments included) decodes to the
    packet it was made from."""
    ptype, data, nsp, ack = case
    encoded = socketio.packet.Packet(ptype, data=data, namespace=nsp, id=ack).encode()
    messages = encoded if isinstance(encoded, list) else [encoded]
    decoder = SioDecoder()
    got = [p for m in messages for p in decoder.feed(m)]
    assert got == [_expected(ptype, data, nsp, ack)]


@pytest.mark.parametrize("case", SIO_CASES, ids=lambda c: f"{c[0]}{c[2] or '/'}")
def test_python_socketio_decodes_ours(case: tuple[int, Any, str | None, int | None]) -> None:
    """python-socketio's decoder reads our encoding back, attachments included."""
    ptype, data, nsp, ack = case
    messages = encode_sio_packet(SioPacket(SioType(ptype), nsp or "/", data, ack))
    first = messages[0]
    assert isinstance(first, str)
    pkt = socketio.packet.Packet(encoded_packet=first)
    for attachment in messages[1:]:
        pkt.add_attachment(attachment)
    assert (pkt.namespace or "/", pkt.id, pkt.data) == (nsp or "/", ack, data)


@pytest.mark.parametrize("case", SIO_CASES, ids=lambda c: f"{c[0]}{c[2] or '/'}")
def test_msgpack_round_trip_with_python_socketio(
        case: tuple[int, Any, str | None, int | None]) -> None:
    """python-socketio's MsgPackPacket output is detected as msgpack and decodes; ours decodes
    in python-socketio."""
    ptype, data, nsp, ack = case
    theirs = socketio.msgpack_packet.MsgPackPacket(ptype, data=data, namespace=nsp or "/",
                                                   id=ack).encode()
    decoder = SioDecoder()
    assert decoder.feed(theirs) == [SioPacket(SioType(ptype), nsp or "/", data, ack)]
    assert decoder.msgpack is True
    [ours] = encode_sio_packet(SioPacket(SioType(ptype), nsp or "/", data, ack), msgpack=True)
    back = socketio.msgpack_packet.MsgPackPacket(encoded_packet=ours)
    assert (back.packet_type, back.namespace, back.id, back.data) == (ptype, nsp or "/", ack,
                                                                       data)


EIO_CASES = [
    EioPacket(EioType.OPEN, '{"sid":"abc","upgrades":["websocket"],"pingInterval":25000}'),
    EioPacket(EioType.CLOSE),
    EioPacket(EioType.PING, "probe"),
    EioPacket(EioType.PONG, "probe"),
    EioPacket(EioType.MESSAGE, '2["chat","é€😀"]'),
    EioPacket(EioType.MESSAGE, b"\x00\x01\xff"),
    EioPacket(EioType.UPGRADE),
    EioPacket(EioType.NOOP),
]


def _theirs(pkt: EioPacket) -> engineio.packet.Packet:
    return engineio.packet.Packet(int(pkt.type), data=pkt.data if pkt.data != "" else None)


def test_engineio_packets_round_trip_with_python_engineio() -> None:
    """python-engineio's packet encodings (WebSocket and base64) decode to the same packet, and
    python-engineio decodes ours."""
    for pkt in EIO_CASES:
        assert decode_eio_packet(_theirs(pkt).encode()) == pkt
        assert decode_eio_packet(_theirs(pkt).encode(b64=True)) == pkt
        back = engineio.packet.Packet(encoded_packet=encode_eio_packet(pkt))
        assert back.packet_type == pkt.type
        if pkt.type == EioType.MESSAGE:
            assert back.data == pkt.data


def test_polling_payloads_round_trip_with_python_engineio() -> None:
    """A python-engineio payload of every packet type decodes packet for packet; python-engineio
    decodes our payload (its own limit of 16 packets per payload is respected here)."""
    body = engineio.payload.Payload(packets=[_theirs(p) for p in EIO_CASES]).encode()
    assert decode_polling_payload(body.encode()) == EIO_CASES
    back = engineio.payload.Payload(encoded_payload=encode_polling_payload(EIO_CASES).decode())
    assert [(p.packet_type, p.data) for p in back.packets][4:6] == [
        (4, '2["chat","é€😀"]'), (4, b"\x00\x01\xff")]


def test_jsonp_bodies_decode() -> None:
    """python-engineio's JSONP response wrapper and the form-encoded JSONP POST both unwrap."""
    inner = [EioPacket(EioType.MESSAGE, '2["a","b c",1]'), EioPacket(EioType.PING)]
    wrapped = engineio.payload.Payload(packets=[_theirs(p) for p in inner]).encode(jsonp_index=3)
    assert decode_polling_payload(wrapped.encode()) == inner
    from urllib.parse import quote

    text = encode_polling_payload([EioPacket(EioType.MESSAGE, '2["line\\nbreak"]')]).decode()
    # engine.io-client's escaping: payload backslash-n -> backslash-backslash-n, newline -> \n
    posted = "d=" + quote(text.replace("\\n", "\\\n").replace("\n", "\\n"))
    assert decode_polling_payload(posted.encode(), content_type="application/x-www-form-urlencoded"
                                  ) == [EioPacket(EioType.MESSAGE, '2["line\\nbreak"]')]
