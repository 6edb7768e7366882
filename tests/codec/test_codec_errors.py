"""Tolerance: bad input becomes a DecodeError with a reason, the raw bytes and the offset;
defensive limits hold; real peers' quirks decode as what they are."""

from __future__ import annotations

import base64
import json

import pytest
import socketio.packet

from sio_sniffer.cli import main
from sio_sniffer.codec import (
    DecodeError,
    EioItem,
    EioPacket,
    EioType,
    ErrorItem,
    SessionDecoder,
    SioDecoder,
    SioItem,
    SioPacket,
    SioType,
    decode_polling_payload,
    encode_sio_packet,
    encode_xhr2_payload,
)
from sio_sniffer.codec.engineio import MAX_PAYLOAD_PACKETS
from sio_sniffer.codec.socketio import MAX_ATTACHMENTS, MAX_DEPTH


def _error(items: list[SioPacket | DecodeError]) -> DecodeError:
    [err] = [i for i in items if isinstance(i, DecodeError)]
    return err


def test_missing_attachment_is_named() -> None:
    """A text packet arriving while attachments are pending reports which attachment never
    arrived, keeps the raw header and attachments, and the new packet still decodes."""
    messages = socketio.packet.Packet(socketio.packet.EVENT, ["f", b"1", b"2", b"3"]).encode()
    dec = SioDecoder()
    assert dec.feed(messages[0]) == [] and dec.feed(messages[1]) == []
    err, pkt = dec.feed('2["next"]')
    assert isinstance(err, DecodeError) and err.reason == "attachment 2 of 3 never arrived"
    assert err.raw == messages[0].encode() + b"1"
    assert pkt == SioPacket(SioType.EVENT, "/", ["next"])


def test_reasons_people_understand() -> None:
    """Typical malformed packets get a specific reason and the offset of the problem."""
    cases = {
        '21a["x"]': ("ack id is not a number: '1a'", 1),
        "2" + "1" * 20 + '["x"]': ("ack id is longer than 16 digits", 1),
        '2["x",': ("payload is not valid JSON", 6),  # where the JSON ran out
        '2{"a":1}': ("event payload is not an array", 1),
        '9["x"]': ("unknown packet type '9'", 0),
        '5["x"]': ("binary packet has no '<count>-' attachment header", 1),
        f'5{MAX_ATTACHMENTS + 1}-["x"]': (f"the limit is {MAX_ATTACHMENTS}", 1),
        '0/a,"str"': ("connect payload is not an object", 4),
        '5/x,1-["x"]': ("binary packet has no '<count>-' attachment header", 1),
    }
    for raw, (reason, offset) in cases.items():
        err = _error(SioDecoder().feed(raw))
        assert reason in err.reason, raw
        assert (err.offset, err.raw, err.layer) == (offset, raw.encode(), "socketio"), raw


def test_placeholder_limits() -> None:
    """A placeholder pointing past the attachments, and arguments nested deeper than the limit,
    are errors, not crashes."""
    dec = SioDecoder()
    assert dec.feed('51-["x",{"_placeholder":true,"num":4}]') == []
    assert "placeholder refers to attachment 4" in _error(dec.feed(b"\x00")).reason
    deep = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    assert dec.feed(f'51-["x",{deep},{{"_placeholder":true,"num":0}}]') == []
    assert "nested deeper" in _error(dec.feed(b"\x01")).reason


def test_stray_binary_and_bad_msgpack() -> None:
    """Binary with nothing waiting is reported; a map that is not a socket.io packet too."""
    assert "no binary packet waiting" in _error(SioDecoder().feed(b"\x01\x02")).reason
    assert "msgpack packet type" in _error(SioDecoder().feed(b"\x81\xa1a\x01")).reason
    assert "ack id is not a number" in _error(
        SioDecoder().feed(b"\x83\xa4type\x02\xa3nsp\xa1/\xa2id\xa1x")).reason


def test_payload_packet_limit() -> None:
    """A body with more packets than the limit decodes the first ones and reports the rest."""
    body = "\x1e".join(["6"] * (MAX_PAYLOAD_PACKETS + 3)).encode()
    items = decode_polling_payload(body)
    assert len(items) == MAX_PAYLOAD_PACKETS + 1
    last = items[-1]
    assert isinstance(last, DecodeError) and "more than" in last.reason
    assert last.offset == 2 * MAX_PAYLOAD_PACKETS and last.raw == b"6\x1e6\x1e6"


def test_bad_packet_in_payload_keeps_the_rest() -> None:
    """One bad packet in a body is an error at its byte offset; the packets around it decode."""
    items = decode_polling_payload('4é\x1ex\x1e2'.encode())
    assert items[0] == EioPacket(EioType.MESSAGE, "é")
    assert isinstance(items[1], DecodeError) and items[1].offset == 4
    assert items[2] == EioPacket(EioType.PING)


def test_python_socketio_quirks() -> None:
    """python-socketio's string CONNECT_ERROR, events sent before the 40{sid} answer and
    python-engineio's 6 right after the client's 5 decode as packets, not errors."""
    dec = SessionDecoder()
    dec.polling("out", b'0{"sid":"s","upgrades":["websocket"],"pingInterval":0,'
                       b'"pingTimeout":200,"maxPayload":1000000}')
    assert dec.open_info["pingInterval"] == 0
    dec.polling("in", b"40\x1e40/nope,")
    items = dec.polling("out", b'42["early"]\x1e40{"sid":"x"}\x1e44/nope,"Unable to connect"')
    assert [i.packet.type for i in items if isinstance(i, SioItem)] == [
        SioType.EVENT, SioType.CONNECT, SioType.CONNECT_ERROR]
    assert items[2].packet.data == "Unable to connect"  # type: ignore[union-attr]
    dec.websocket("in", b"2probe", True)
    assert dec.state == "probing"
    dec.websocket("out", b"3probe", True)
    assert dec.polling("out", b"6") == [EioItem("out", "polling", EioPacket(EioType.NOOP))]
    assert not dec.upgraded
    dec.websocket("in", b"5", True)
    assert dec.upgraded
    assert dec.websocket("out", b"6", True) == [
        EioItem("out", "websocket", EioPacket(EioType.NOOP))]
    assert dec.websocket("out", b"1", True)[0] == EioItem("out", "websocket",
                                                          EioPacket(EioType.CLOSE))
    assert dec.state == "closed" and dec.upgraded


def test_session_msgpack_detection_and_v4_namespace_query() -> None:
    """A msgpack session is detected from its first binary packet; a Socket.IO v4 client's
    namespace query is split off the namespace."""
    dec = SessionDecoder()
    assert dec.msgpack is None
    [item] = dec.websocket("in", encode_sio_packet(  # type: ignore[arg-type]
        SioPacket(SioType.EVENT, "/", ["x", b"\x00"]), msgpack=True)[0], False)
    assert isinstance(item, SioItem) and item.packet.args == [b"\x00"]
    assert dec.msgpack is True
    [v4] = SioDecoder().feed("0/admin?token=abc")
    assert v4 == SioPacket(SioType.CONNECT, "/admin", query="token=abc")


def test_session_close_reports_incomplete_binary_packet() -> None:
    """Closing with attachments still pending reports them as an ErrorItem."""
    dec = SessionDecoder()
    dec.websocket("out", b'452-["a",{"_placeholder":true,"num":0}]', True)
    [item] = dec.close()
    assert isinstance(item, ErrorItem) and item.dir == "out"
    assert item.error.reason == "attachment 1 of 2 never arrived"


def test_invalid_utf8_text_frame() -> None:
    """A text WebSocket message that is not UTF-8 is an error with the offset of the bad byte."""
    [item] = SessionDecoder().websocket("in", b'42["\xff"]', True)
    assert isinstance(item, ErrorItem)
    assert "not valid UTF-8" in item.error.reason and item.error.offset == 3


def test_decode_command_prints_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """`sio-sniffer decode` prints one JSON object per packet, with attachments, and exits 0."""
    rc = main(["decode", '451-/admin,3["up",{"_placeholder":true,"num":0}]',
               "--hex-next", "00ff", "--dir", "out"])
    assert rc == 0
    [line] = capsys.readouterr().out.splitlines()
    assert json.loads(line) == {
        "dir": "out", "transport": "websocket", "eio_type": "MESSAGE",
        "sio_type": "BINARY_EVENT", "namespace": "/admin", "ack_id": 3, "event": "up",
        "args": [{"hex": "00ff"}], "attachments": [{"hex": "00ff"}]}


def test_decode_command_polling_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """A polling body is detected and split; a decode error is printed with reason and offset,
    and the exit status is 1."""
    rc = main(["decode", '2\x1e42["a",1]\x1e42["b"'])
    assert rc == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"dir": "in", "transport": "polling", "eio_type": "PING"}
    assert lines[1]["event"] == "a" and lines[1]["args"] == [1]
    assert lines[2]["error"].startswith("payload is not valid JSON")
    assert lines[2]["raw_text"] == '2["b"' and lines[2]["offset"] == 5


def test_decode_command_v3_binary_and_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    """`--eio 3 --base64` decodes an XHR2 body; invalid hex is refused with exit status 2."""
    body = base64.b64encode(encode_xhr2_payload(
        [EioPacket(EioType.MESSAGE, '2["x"]'), EioPacket(EioType.PING)])).decode()
    assert main(["decode", "--eio", "3", "--base64", body]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [line.get("event", line["eio_type"]) for line in lines] == ["x", "PING"]
    assert main(["decode", "--hex", "zz"]) == 2
    assert "not valid hex" in capsys.readouterr().err
