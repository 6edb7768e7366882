"""Engine.IO v3 (protocol 3, Socket.IO v2 clients) against vectors made by the real Node
engine.io-parser 2.2.1, stored in vectors_eio3.json. Regenerate with:

    npm install --prefix /tmp/eio2 engine.io-parser@2.2.1
    EIO_PARSER_V2=/tmp/eio2/node_modules/engine.io-parser \\
        node tests/node/vectors.js encode-v3 > tests/codec/vectors_eio3.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sio_sniffer.codec import (
    DecodeError,
    EioItem,
    EioPacket,
    EioType,
    SessionDecoder,
    SioItem,
    SioType,
    decode_eio_packet,
    decode_polling_payload,
    encode_eio_packet,
    encode_polling_payload,
    encode_xhr2_payload,
)
from tests.codec.codec_helpers import eio_packet, message

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).with_name("vectors_eio3.json")).read_text("utf-8"))


@pytest.mark.parametrize("vec", [v for v in VECTORS if v["layer"] == "eio"])
def test_v3_packets(vec: dict[str, Any]) -> None:
    """v3 packets decode: type-byte binary frames, ``b<type><base64>`` packets and text; our
    WebSocket encoding equals engine.io-parser 2's."""
    pkt = eio_packet(vec["packet"])
    encoded = message(vec["encoded"])
    assert decode_eio_packet(encoded, eio=3) == pkt
    if vec["supports_binary"]:
        assert encode_eio_packet(pkt, eio=3) == encoded


@pytest.mark.parametrize("vec", [v for v in VECTORS if v["layer"] == "payload"])
def test_v3_payloads(vec: dict[str, Any]) -> None:
    """v3 payloads decode packet for packet: length-prefixed text (lengths in UTF-16 units, so
    an emoji counts 2) and XHR2 binary bodies; our encoders produce the same bytes."""
    packets = [eio_packet(p) for p in vec["packets"]]
    encoded = message(vec["encoded"])
    if isinstance(encoded, str):
        body = encoded.encode("utf-8")
        assert decode_polling_payload(body, eio=3, content_type="text/plain; charset=UTF-8") == (
            packets)
        if packets:
            assert encode_polling_payload(packets, eio=3) == body
    else:
        assert decode_polling_payload(encoded, eio=3,
                                      content_type="application/octet-stream") == packets
        assert encode_xhr2_payload(packets) == encoded


def test_v3_length_counts_utf16_units() -> None:
    """A v3 length counts an astral character as two units, as JavaScript's String.length."""
    body = "3:4😀2:4é".encode()
    assert decode_polling_payload(body, eio=3) == [EioPacket(EioType.MESSAGE, "😀"),
                                                   EioPacket(EioType.MESSAGE, "é")]
    broken = decode_polling_payload("2:4😀".encode(), eio=3)
    assert broken[0] == EioPacket(EioType.MESSAGE, "\ud83d")


def test_v3_bad_framing_reports_offset() -> None:
    """A length that overruns the body is an error at the packet's offset; earlier packets
    survive."""
    body = b"6:4hello9:4hi"
    [ok, err] = decode_polling_payload(body, eio=3)
    assert ok == EioPacket(EioType.MESSAGE, "hello")
    assert isinstance(err, DecodeError)
    assert err.offset == 8 and err.raw == b"9:4hi"
    assert "claims 9" in err.reason


def test_v3_session_client_pings_and_binary_frames() -> None:
    """A v3 session: OPEN over polling (no maxPayload), client pings and server pongs, upgrade,
    then a binary event whose attachment is a type-byte-prefixed binary frame."""
    dec = SessionDecoder(eio=3)
    opening = encode_polling_payload(
        [EioPacket(EioType.OPEN, '{"sid":"v3sid","upgrades":["websocket"],"pingInterval":25000,'
                                 '"pingTimeout":5000}'),
         EioPacket(EioType.MESSAGE, "0")], eio=3)
    items = dec.polling("out", opening, "text/plain; charset=UTF-8")
    assert dec.sid == "v3sid" and "maxPayload" not in dec.open_info
    assert isinstance(items[1], SioItem) and items[1].packet.type == SioType.CONNECT
    assert [type(i) for i in dec.polling("in", b"1:2")] == [EioItem]
    assert dec.polling("out", b"1:3")[0] == EioItem("out", "polling", EioPacket(EioType.PONG))
    dec.websocket("in", b"2probe", True)
    dec.websocket("out", b"3probe", True)
    dec.polling("out", b"1:6")
    dec.websocket("in", b"5", True)
    assert dec.upgraded
    assert dec.websocket("in", b'451-["up",{"_placeholder":true,"num":0}]', True) == []
    [item] = dec.websocket("in", b"\x04\x00\xff", False)
    assert isinstance(item, SioItem)
    assert item.packet.args == [b"\x00\xff"]
    [ping] = dec.websocket("in", b"2", True)
    assert ping == EioItem("in", "websocket", EioPacket(EioType.PING))
