"""Socket.IO packets (protocol v5, and v4 which shares the wire format) and the msgpack variant.

Text packet, carried in one Engine.IO MESSAGE::

    <type digit>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]

    2["chat","hi"]                      EVENT on /
    21["chat","hi"]                     EVENT on / asking for ack 1
    3/admin,1["ok"]                     ACK 1 on /admin
    0/admin,{"token":"x"}               CONNECT with auth (v5); the answer is 0/admin,{"sid":"…"}
    4/admin,{"message":"refused"}       CONNECT_ERROR (v4: ERROR, often a bare string)
    51-["up",{"_placeholder":true,"num":0}]   BINARY_EVENT; one binary message per attachment
                                             follows, and replaces its placeholder

The namespace is present only when it is not ``/`` and always ends with a comma. Socket.IO v4
clients put the query in it (``/admin?token=x,``). The attachment count is present only for the
binary types.

The msgpack parser (socket.io-msgpack-parser) sends every packet as one binary message, a map
``{type, nsp, data, id}``, with bytes inline: no placeholders and no separate attachments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import orjson

from sio_sniffer.codec.errors import CodecError, DecodeError

LAYER = "socketio"
# Node's parser stops at 10 attachments by default; 1000 tolerates odd peers and stays bounded.
MAX_ATTACHMENTS = 1000
MAX_ID_DIGITS = 16  # JavaScript numbers are exact to 2**53, which has 16 digits
MAX_DEPTH = 128  # nesting that placeholder reassembly and the msgpack map walk will follow


class SioType(IntEnum):
    """Socket.IO packet types (4 is called ERROR in protocol v4, CONNECT_ERROR in v5)."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


_TYPE_BY_CHAR = {str(int(t)): t for t in SioType}
_TYPE_BY_INT = {int(t): t for t in SioType}
_EVENTS = (SioType.EVENT, SioType.BINARY_EVENT)
_ACKS = (SioType.ACK, SioType.BINARY_ACK)
_BINARY = (SioType.BINARY_EVENT, SioType.BINARY_ACK)
_EVENT = SioType.EVENT


@dataclass(frozen=True, slots=True)
class SioPacket:
    """One decoded Socket.IO packet, binary attachments already put back in place.

    ``attachments`` is the count the packet announced (text parser); ``query`` is the query a
    Socket.IO v4 client appended to the namespace (``/admin?token=x``), or None.
    """

    type: SioType
    namespace: str = "/"
    data: Any = None
    id: int | None = None
    attachments: int = 0
    query: str | None = None

    @property
    def name(self) -> str | None:
        """The event name of an EVENT/BINARY_EVENT (numbers are legal names in Node), else None."""
        data = self.data
        if self.type in _EVENTS and type(data) is list and data:
            first = data[0]
            if isinstance(first, str):
                return first
            if isinstance(first, (int, float)) and not isinstance(first, bool):
                return str(first)
        return None

    @property
    def args(self) -> list[Any]:
        """The arguments: after the name for events, the payload for acks, else [payload]."""
        data = self.data
        if self.type in _EVENTS:
            return list(data[1:]) if type(data) is list else []
        if self.type in _ACKS:
            return list(data) if type(data) is list else [data]
        return [] if data is None else [data]


def _new_event(data: list[Any]) -> SioPacket:
    """The hot path's constructor: a plain text EVENT on ``/``, bypassing the frozen-dataclass
    ``__init__`` (which costs one ``object.__setattr__`` call per field)."""
    pkt = _object_new(SioPacket)
    _set_type(pkt, _EVENT)
    _set_namespace(pkt, "/")
    _set_data(pkt, data)
    _set_id(pkt, None)
    _set_attachments(pkt, 0)
    _set_query(pkt, None)
    return pkt


_object_new = object.__new__
_Setter = Callable[[SioPacket, Any], None]
_SLOTS = SioPacket.__dict__
_set_type: _Setter = _SLOTS["type"].__set__
_set_namespace: _Setter = _SLOTS["namespace"].__set__
_set_data: _Setter = _SLOTS["data"].__set__
_set_id: _Setter = _SLOTS["id"].__set__
_set_attachments: _Setter = _SLOTS["attachments"].__set__
_set_query: _Setter = _SLOTS["query"].__set__


class _Invalid(Exception):
    """Internal: a packet failed to decode; carries the reason and the char index."""

    def __init__(self, reason: str, index: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.index = index


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads(text: str | bytes | memoryview) -> Any:
    """JSON as JavaScript's ``JSON.parse`` reads it. orjson first (fast); the stdlib for what
    orjson refuses but JavaScript accepts (integers beyond 64 bits, lone surrogate escapes)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(bytes(text) if isinstance(text, memoryview) else text,
                              parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            raise _Invalid(f"payload is not valid JSON ({exc.msg})", exc.pos) from None


_DIGITS = re.compile(r"[0-9]*")
_BAD_ID = re.compile(r"[0-9]*[A-Za-z_.+-][^\[\]{}\",]*(?=[\[{\"])")


def _decode_text(s: str) -> SioPacket | _Pending:
    """Decode one text packet; raise :class:`_Invalid` for bad input."""
    if not s:
        raise _Invalid("empty Socket.IO packet")
    ptype = _TYPE_BY_CHAR.get(s[0])
    if ptype is None:
        raise _Invalid(f"unknown packet type {s[0]!r} (expected 0-6)")
    end = len(s)
    i = 1
    attachments = 0
    if ptype in _BINARY:
        dash = s.find("-", 1, 2 + len(str(MAX_ATTACHMENTS)))
        digits = s[1:dash] if dash > 0 else ""
        if not digits.isdigit() or not digits.isascii():
            raise _Invalid("binary packet has no '<count>-' attachment header", 1)
        attachments = int(digits)
        if attachments > MAX_ATTACHMENTS:
            raise _Invalid(
                f"packet announces {attachments} attachments; the limit is {MAX_ATTACHMENTS}", 1)
        i = dash + 1
    namespace = "/"
    query = None
    if i < end and s[i] == "/":
        comma = s.find(",", i)
        if comma < 0:
            comma = end
        namespace = s[i:comma]
        q = namespace.find("?")
        if q >= 0:
            namespace, query = namespace[:q], namespace[q + 1:]
        i = comma + 1
    ack_id = None
    bad_id = _BAD_ID.match(s, i)
    if bad_id is not None:
        raise _Invalid(f"ack id is not a number: {bad_id.group(0)!r}", i)
    j = _DIGITS.match(s, i).end()  # type: ignore[union-attr]
    if j > i:
        if j - i > MAX_ID_DIGITS:
            raise _Invalid(f"ack id is longer than {MAX_ID_DIGITS} digits", i)
        ack_id = int(s[i:j])
        i = j
    data = None
    if i < end:
        try:
            data = _loads(s[i:])
        except _Invalid as exc:
            exc.index += i
            raise
    _check_payload(ptype, data, i)
    if ptype in _BINARY:
        return _Pending(ptype, namespace, data, ack_id, attachments, query, s)
    return SioPacket(ptype, namespace, data, ack_id, 0, query)


def _check_payload(ptype: SioType, data: Any, index: int) -> None:
    """Reject payloads that every Socket.IO implementation refuses (Node's isPayloadValid),
    but accept the real peers' variants: CONNECT with no payload (v4), string CONNECT_ERROR."""
    if ptype in _EVENTS:
        if type(data) is not list or not data:
            raise _Invalid("event payload is not an array starting with the event name", index)
    elif ptype in _ACKS:
        if type(data) is not list:
            raise _Invalid("ack payload is not an array", index)
    elif ptype == SioType.CONNECT:
        if data is not None and type(data) is not dict:
            raise _Invalid("connect payload is not an object", index)
    elif ptype == SioType.CONNECT_ERROR and data is not None and type(data) not in (dict, str):
        raise _Invalid("connect_error payload is neither an object nor a string", index)


class _Pending:
    """A BINARY_EVENT/BINARY_ACK header waiting for its attachments."""

    __slots__ = ("ack_id", "attachments", "buffers", "data", "namespace", "query", "raw", "type")

    def __init__(self, ptype: SioType, namespace: str, data: Any, ack_id: int | None,
                 attachments: int, query: str | None, raw: str) -> None:
        self.type = ptype
        self.namespace = namespace
        self.data = data
        self.ack_id = ack_id
        self.attachments = attachments
        self.query = query
        self.raw = raw
        self.buffers: list[bytes] = []

    def complete(self) -> SioPacket:
        """The packet with every placeholder replaced; raises :class:`_Invalid`."""
        data = _reconstruct(self.data, self.buffers, 0)
        return SioPacket(self.type, self.namespace, data, self.ack_id, self.attachments,
                         self.query)


def _reconstruct(data: Any, buffers: list[bytes], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise _Invalid(f"arguments are nested deeper than {MAX_DEPTH} levels")
    kind = type(data)
    if kind is list:
        return [_reconstruct(item, buffers, depth + 1) for item in data]
    if kind is dict:
        if data.get("_placeholder") is True:
            num = data.get("num")
            if type(num) is int and 0 <= num < len(buffers):
                return buffers[num]
            raise _Invalid(
                f"placeholder refers to attachment {num!r} but the packet has {len(buffers)}")
        return {key: _reconstruct(value, buffers, depth + 1) for key, value in data.items()}
    return data


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _error(reason: str, raw: bytes, offset: int = 0) -> DecodeError:
    return DecodeError(reason, raw, offset, LAYER)


def _text_error(s: str, exc: _Invalid) -> DecodeError:
    index = min(max(exc.index, 0), len(s))
    return _error(exc.reason, _utf8(s), len(_utf8(s[:index])))


def _looks_like_msgpack(data: bytes) -> bool:
    return bool(data) and (0x80 <= data[0] <= 0x8F or data[0] in (0xDE, 0xDF))


def _msgpack_ext(code: int, data: bytes) -> Any:
    import msgpack

    # notepack.io (the Node msgpack parser's encoder) writes ``undefined`` as fixext 0 / 0x00.
    if code == 0 and data == b"\x00":
        return None
    return msgpack.ExtType(code, data)


def _decode_msgpack(data: bytes) -> SioPacket:
    """Decode a whole msgpack packet; raises :class:`_Invalid`."""
    import msgpack  # imported on first use: most sessions use the text parser

    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_msgpack_ext)
    except Exception as exc:  # msgpack raises many unrelated types for foreign bytes
        raise _Invalid(f"not a msgpack packet ({type(exc).__name__}: {exc})") from None
    if type(obj) is not dict:
        raise _Invalid(f"msgpack packet is a {type(obj).__name__}, not a map")
    raw_type = obj.get("type")
    ptype = _TYPE_BY_INT.get(raw_type) if type(raw_type) is int else None
    if ptype is None:
        raise _Invalid(f"msgpack packet type {raw_type!r} is not 0-6")
    namespace = obj.get("nsp", "/")
    if not isinstance(namespace, str):
        raise _Invalid(f"msgpack namespace {namespace!r} is not a string")
    ack_id = obj.get("id")
    if ack_id is not None and (type(ack_id) is not int or ack_id < 0):
        raise _Invalid(f"ack id is not a number: {ack_id!r}")
    payload = obj.get("data")
    _check_payload(ptype, payload, 0)
    _check_depth(payload, 0)
    return SioPacket(ptype, namespace, payload, ack_id)


def _check_depth(data: Any, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _Invalid(f"arguments are nested deeper than {MAX_DEPTH} levels")
    if type(data) is list:
        for item in data:
            _check_depth(item, depth + 1)
    elif type(data) is dict:
        for item in data.values():
            _check_depth(item, depth + 1)


class SioDecoder:
    """Decodes the Socket.IO packets of one direction of one Engine.IO session.

    Feed it each Engine.IO MESSAGE in order (``str`` for text, ``bytes`` for binary). It keeps
    the state that spans messages: a binary packet waiting for its attachments, and whether the
    peer uses the msgpack parser (``msgpack=None`` detects it from the first binary packet).
    Never raises: bad input comes back as :class:`DecodeError` items.
    """

    def __init__(self, msgpack: bool | None = None) -> None:
        self.msgpack = msgpack
        self._pending: _Pending | None = None

    @property
    def pending_attachments(self) -> int:
        """How many attachments the packet being reassembled still waits for (0 if none)."""
        pending = self._pending
        return 0 if pending is None else pending.attachments - len(pending.buffers)

    def feed(self, data: str | bytes) -> list[SioPacket | DecodeError]:
        """Decode one message; returns the packets (and errors) it completes."""
        if isinstance(data, str):
            if self._pending is None and data.startswith("2["):
                fast = _fast_event(data[1:])
                if fast is not None:
                    return [fast]
            return self._text(data)
        return self._binary(bytes(data))

    def feed_utf8(self, data: bytes, start: int = 0) -> list[SioPacket | DecodeError]:
        """Decode one text message given as UTF-8 bytes, from ``start`` on (e.g. 1 to skip the
        Engine.IO type of a WebSocket frame); the hot path for plain events avoids a copy."""
        if self._pending is None and data.startswith(b"2[", start):
            fast = _fast_event(data[start + 1:])
            if fast is not None:
                return [fast]
        try:
            text = data[start:].decode("utf-8")
        except UnicodeDecodeError as exc:
            out = self._abandon()
            out.append(_error(f"text message is not valid UTF-8 ({exc.reason})",
                              data[start:], exc.start))
            return out
        return self._text(text)

    def flush(self) -> list[SioPacket | DecodeError]:
        """End of stream: report a binary packet whose attachments never all arrived."""
        return self._abandon()

    def _abandon(self) -> list[SioPacket | DecodeError]:
        pending = self._pending
        if pending is None:
            return []
        self._pending = None
        got = len(pending.buffers)
        return [_error(f"attachment {got + 1} of {pending.attachments} never arrived",
                       _utf8(pending.raw) + b"".join(pending.buffers))]

    def _text(self, s: str) -> list[SioPacket | DecodeError]:
        out = self._abandon()
        try:
            decoded = _decode_text(s)
            if isinstance(decoded, _Pending):
                if decoded.attachments == 0:
                    out.append(decoded.complete())
                else:
                    self._pending = decoded
            else:
                out.append(decoded)
        except _Invalid as exc:
            out.append(_text_error(s, exc))
        return out

    def _binary(self, data: bytes) -> list[SioPacket | DecodeError]:
        pending = self._pending
        if pending is not None:
            pending.buffers.append(data)
            if len(pending.buffers) < pending.attachments:
                return []
            self._pending = None
            try:
                return [pending.complete()]
            except _Invalid as exc:
                return [_error(exc.reason, _utf8(pending.raw) + b"".join(pending.buffers))]
        if self.msgpack is False or not _looks_like_msgpack(data):
            return [_error("binary message with no binary packet waiting for it"
                           + ("" if self.msgpack is False else " (and it is not msgpack)"),
                           data)]
        try:
            pkt = _decode_msgpack(data)
        except _Invalid as exc:
            return [_error(exc.reason, data)]
        self.msgpack = True
        return [pkt]


def _fast_event(payload: str | bytes) -> SioPacket | None:
    """A plain ``2[...]`` event on ``/`` with no ack id, or None to take the full path."""
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if type(data) is list and data and type(data[0]) is str:
        return _new_event(data)
    return None


def decode_sio_packet(data: str) -> SioPacket:
    """Decode one complete text packet (no attachments pending); raises :class:`CodecError`.

    A BINARY_EVENT/BINARY_ACK header decodes with its placeholders still in place.
    """
    try:
        decoded = _decode_text(data)
    except _Invalid as exc:
        raise CodecError(_text_error(data, exc)) from None
    if isinstance(decoded, _Pending):
        return SioPacket(decoded.type, decoded.namespace, decoded.data, decoded.ack_id,
                         decoded.attachments, decoded.query)
    return decoded


# A text packet cut at its payload: type, ``<n>-`` attachment count, ``/nsp[?query],``, ack id.
# Lenient on purpose (no payload check): it serves rewriting a payload in place, where the
# header must come back byte for byte, placeholders and attachment count included.
_TEXT_HEADER = re.compile(r"([0-6])(\d+-)?(/[^,]*,)?(\d*)")


def split_sio_text(data: str) -> tuple[SioType, str, str] | None:
    """A text packet as (type, header, payload), ``header + payload == data``; None when it
    does not start like a Socket.IO packet."""
    m = _TEXT_HEADER.match(data)
    if m is None:
        return None
    return _TYPE_BY_CHAR[m.group(1)], m.group(0), data[m.end():]


def _has_binary(data: Any) -> bool:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return True
    if isinstance(data, list):
        return any(_has_binary(item) for item in data)
    if isinstance(data, dict):
        return any(_has_binary(item) for item in data.values())
    return False


def _deconstruct(data: Any, buffers: list[bytes]) -> Any:
    if isinstance(data, (bytes, bytearray, memoryview)):
        buffers.append(bytes(data))
        return {"_placeholder": True, "num": len(buffers) - 1}
    if isinstance(data, list):
        return [_deconstruct(item, buffers) for item in data]
    if isinstance(data, dict):
        return {key: _deconstruct(value, buffers) for key, value in data.items()}
    return data


def encode_sio_packet(pkt: SioPacket, msgpack: bool = False) -> list[str | bytes]:
    """Encode a packet as Engine.IO messages: the packet, then one per binary attachment.

    Like Node's encoder, an EVENT or ACK whose arguments hold bytes goes out as
    BINARY_EVENT/BINARY_ACK; with ``msgpack`` the packet is one binary message.
    """
    if msgpack:
        import msgpack as _msgpack

        obj: dict[str, Any] = {"type": int(pkt.type), "nsp": pkt.namespace}
        if pkt.data is not None:
            obj["data"] = pkt.data
        if pkt.id is not None:
            obj["id"] = pkt.id
        return [_msgpack.packb(obj, use_bin_type=True)]
    ptype = pkt.type
    data = pkt.data
    buffers: list[bytes] = []
    if ptype in _BINARY or (ptype in (SioType.EVENT, SioType.ACK) and _has_binary(data)):
        ptype = SioType.BINARY_EVENT if ptype in _EVENTS else SioType.BINARY_ACK
        data = _deconstruct(data, buffers)
    parts = [str(int(ptype))]
    if ptype in _BINARY:
        parts.append(f"{len(buffers)}-")
    if pkt.namespace != "/" or pkt.query is not None:
        parts.append(pkt.namespace)
        if pkt.query is not None:
            parts.append(f"?{pkt.query}")
        parts.append(",")
    if pkt.id is not None:
        parts.append(str(pkt.id))
    if data is not None:
        parts.append(json.dumps(data, separators=(",", ":"), ensure_ascii=False))
    return ["".join(parts), *buffers]
