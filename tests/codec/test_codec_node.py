"""The codec against the real Node parsers: socket.io-parser, engine.io-parser 5 and
socket.io-msgpack-parser (vectors made by tests/node/vectors.js, run here through node)."""

from __future__ import annotations

from typing import Any

import pytest

from sio_sniffer.codec import (
    SioDecoder,
    SioPacket,
    decode_eio_packet,
    decode_polling_payload,
    encode_eio_packet,
    encode_polling_payload,
    encode_sio_packet,
)
from tests.codec.codec_helpers import (
    eio_packet,
    from_json,
    message,
    run_node,
    sio_packet,
    to_json,
    to_message,
)


@pytest.fixture(scope="module")
def vectors() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = run_node("encode")
    return out


def _of(vectors: list[dict[str, Any]], layer: str, parser: str | None = None) -> list[Any]:
    found = [v for v in vectors
             if v["layer"] == layer and (parser is None or v["parser"] == parser)]
    assert found
    return found


def test_decodes_node_socketio_parser_output(vectors: list[dict[str, Any]]) -> None:
    """Every packet Node's socket.io-parser encodes (binary ones included) decodes to the same
    packet, attachments put back where their placeholders were."""
    for vec in _of(vectors, "sio", "default"):
        decoder = SioDecoder()
        got: list[Any] = []
        for m in vec["encoded"]:
            got.extend(decoder.feed(message(m)))
        assert got == [sio_packet(vec["packet"])], vec


def test_encodes_like_node_socketio_parser(vectors: list[dict[str, Any]]) -> None:
    """Our text encoder produces exactly Node's messages for the same packets."""
    for vec in _of(vectors, "sio", "default"):
        ours = encode_sio_packet(sio_packet(vec["packet"]))
        assert [to_message(m) for m in ours] == vec["encoded"], vec


def test_decodes_node_msgpack_parser_output(vectors: list[dict[str, Any]]) -> None:
    """socket.io-msgpack-parser packets decode (detected without being told) with bytes inline."""
    for vec in _of(vectors, "sio", "msgpack"):
        decoder = SioDecoder()
        got = [p for m in vec["encoded"] for p in decoder.feed(message(m))]
        assert got == [sio_packet(vec["packet"], text_parser=False)], vec
        assert decoder.msgpack is True


def test_node_decodes_what_we_encode() -> None:
    """Node's decoders read our encodings of socket.io packets (text and msgpack), engine.io
    packets and polling payloads back to the packets we meant."""
    from sio_sniffer.codec import EioPacket, EioType, SioType

    sio_cases = [
        SioPacket(SioType.CONNECT, "/admin", {"token": "x"}),
        SioPacket(SioType.EVENT, "/", ["chat", "é€😀", {"n": 1.5}], 7),
        SioPacket(SioType.EVENT, "/ns", ["bin", b"\x00\xff", {"deep": [b"ab"]}], 3),
        SioPacket(SioType.ACK, "/", [b"\x01", "x"], 9),
        SioPacket(SioType.CONNECT_ERROR, "/x", "Unable to connect"),
        SioPacket(SioType.DISCONNECT, "/admin"),
    ]
    eio_cases = [EioPacket(EioType.MESSAGE, "2[\"x\"]"), EioPacket(EioType.PING, "probe"),
                 EioPacket(EioType.MESSAGE, b"\x01\x02"), EioPacket(EioType.NOOP)]
    requests: list[dict[str, Any]] = []
    for pkt in sio_cases:
        requests.append({"layer": "sio", "parser": "default",
                         "encoded": [to_message(m) for m in encode_sio_packet(pkt)]})
        requests.append({"layer": "sio", "parser": "msgpack",
                         "encoded": [to_message(m) for m in encode_sio_packet(pkt, msgpack=True)]})
    for epkt in eio_cases:
        requests.append({"layer": "eio", "encoded": to_message(encode_eio_packet(epkt))})
    requests.append({"layer": "payload",
                     "encoded": {"text": encode_polling_payload(eio_cases).decode()}})
    answers = run_node("decode", requests)
    it = iter(answers)
    for pkt in sio_cases:
        text, mp = next(it), next(it)
        assert "error" not in text and "error" not in mp
        # Node's decoder hands BINARY_EVENT/BINARY_ACK back as EVENT/ACK, bytes in place.
        assert [sio_packet(p, text_parser=False) for p in text["packets"]] == [pkt]
        assert [sio_packet(p, text_parser=False) for p in mp["packets"]] == [pkt]
    for epkt in eio_cases:
        assert [eio_packet(p) for p in next(it)["packets"]] == [epkt]
    assert [eio_packet(p) for p in next(it)["packets"]] == eio_cases


def test_engineio_packets_match_node(vectors: list[dict[str, Any]]) -> None:
    """Engine.IO v4 packets from engine.io-parser decode to the same packet (binary frames and
    base64 packets alike) and our WebSocket encoding equals Node's."""
    for vec in _of(vectors, "eio"):
        pkt = eio_packet(vec["packet"])
        encoded = message(vec["encoded"])
        assert decode_eio_packet(encoded) == pkt, vec
        if vec["supports_binary"]:
            assert encode_eio_packet(pkt) == encoded, vec


def test_polling_payloads_match_node(vectors: list[dict[str, Any]]) -> None:
    """engine.io-parser's ``\\x1e`` payloads decode packet for packet; ours encode identically."""
    for vec in _of(vectors, "payload"):
        packets = [eio_packet(p) for p in vec["packets"]]
        body = vec["encoded"]["text"].encode()
        assert decode_polling_payload(body) == packets
        assert encode_polling_payload(packets) == body


def test_binary_attachments_nested_anywhere(vectors: list[dict[str, Any]]) -> None:
    """Placeholders nested in objects inside arrays come back as the bytes Node sent."""
    vec = next(v for v in _of(vectors, "sio", "default") if len(v["encoded"]) == 4)
    decoder = SioDecoder()
    assert decoder.feed(message(vec["encoded"][0])) == []
    assert decoder.pending_attachments == 3
    assert decoder.feed(message(vec["encoded"][1])) == []
    assert decoder.feed(message(vec["encoded"][2])) == []
    [pkt] = decoder.feed(message(vec["encoded"][3]))
    assert isinstance(pkt, SioPacket)
    assert pkt.name == "bin"
    assert pkt.args == from_json(vec["packet"]["data"])[1:]
    assert pkt.args[1]["nested"][1]["deep"] == b"\xff"
    assert to_json(pkt.data) == vec["packet"]["data"]
