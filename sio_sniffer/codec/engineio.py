"""Engine.IO packets and polling payloads, protocol revisions 4 (``EIO=4``) and 3 (``EIO=3``).

Packet (both revisions), as text::

    <type digit 0-6>[<data>]            e.g. ``4hello``, ``2probe``, ``0{"sid":"..."}``

Binary packets:

- v4 WebSocket: a binary frame is the raw bytes of a MESSAGE, no type prefix.
- v3 WebSocket and v3 XHR2 payloads: the first byte is the packet type, the rest is the data.
- In text payloads: v4 ``b<base64>`` (always a MESSAGE); v3 ``b<type digit><base64>``.

Polling payloads:

- v4: packets joined by the record separator ``\\x1e``.
- v3 text: ``<length>:<packet>`` repeated, length in UTF-16 code units (what JavaScript's
  ``String.length`` counts), e.g. ``6:4hello2:4€``.
- v3 XHR2 binary (``application/octet-stream``): per packet a marker byte (0 text, 1 binary),
  the length as one byte per decimal digit (values 0-9), a 255 byte, then the packet; text
  packets are UTF-8 and their length counts bytes.
- JSONP (either revision): the server answers ``___eio[<j>]("<payload as a JS string>");`` and
  the client POSTs the form field ``d=<payload>`` with newlines sent as a backslash and ``n``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from urllib.parse import parse_qs

from sio_sniffer.codec.errors import CodecError, DecodeError

LAYER = "engineio"
# A GET body holds whatever the server buffered (Node caps bodies at maxHttpBufferSize, 1 MB by
# default): generous, but a bound, so one absurd body cannot produce millions of items.
MAX_PAYLOAD_PACKETS = 50_000
MAX_LENGTH_DIGITS = 10  # a v3 length prefix longer than this is garbage, not a 10 GB packet
RECORD_SEPARATOR = "\x1e"


class EioType(IntEnum):
    """Engine.IO packet types."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


_TYPE_BY_CHAR = {str(int(t)): t for t in EioType}
_TYPE_BY_BYTE = {int(t): t for t in EioType}


@dataclass(frozen=True, slots=True)
class EioPacket:
    """One Engine.IO packet; ``data`` is ``bytes`` for a binary packet, ``str`` otherwise."""

    type: EioType
    data: str | bytes = ""

    @property
    def binary(self) -> bool:
        """True when the packet carries bytes (a binary frame or a base64 packet)."""
        return isinstance(self.data, bytes)


def _error(reason: str, raw: bytes, offset: int = 0) -> DecodeError:
    return DecodeError(reason, raw, offset, LAYER)


def _b64decode(text: str, raw: bytes, offset: int) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise CodecError(_error("binary packet is not valid base64", raw, offset)) from None


def decode_eio_packet(data: str | bytes, eio: int = 4) -> EioPacket:
    """Decode one packet: a WebSocket message (``bytes`` = binary frame) or a payload element.

    Raises :class:`CodecError` for input that is not an Engine.IO packet.
    """
    if not isinstance(data, str):
        raw = bytes(data)
        if eio != 3:
            return EioPacket(EioType.MESSAGE, raw)
        if not raw:
            raise CodecError(_error("empty binary packet (v3 needs a type byte)", raw))
        btype = _TYPE_BY_BYTE.get(raw[0])
        if btype is None:
            raise CodecError(_error(f"binary packet type byte {raw[0]} is not 0-6", raw))
        return EioPacket(btype, raw[1:])
    if not data:
        raise CodecError(_error("empty packet (no type)", b""))
    ptype = _TYPE_BY_CHAR.get(data[0])
    if ptype is not None:
        return EioPacket(ptype, data[1:])
    if data[0] == "b":
        raw = data.encode("utf-8", "surrogatepass")
        if eio != 3:
            return EioPacket(EioType.MESSAGE, _b64decode(data[1:], raw, 1))
        btype = _TYPE_BY_CHAR.get(data[1:2])
        if btype is None:
            raise CodecError(_error(f"base64 packet type {data[1:2]!r} is not 0-6", raw, 1))
        return EioPacket(btype, _b64decode(data[2:], raw, 2))
    raw = data.encode("utf-8", "surrogatepass")
    raise CodecError(_error(f"unknown packet type {data[0]!r} (expected 0-6 or b)", raw))


def encode_eio_packet(pkt: EioPacket, eio: int = 4) -> str | bytes:
    """Encode one packet as a WebSocket message (``bytes`` means a binary frame)."""
    if isinstance(pkt.data, bytes):
        if eio == 3:
            return bytes((int(pkt.type),)) + pkt.data
        return pkt.data
    return f"{int(pkt.type)}{pkt.data}"


def _encode_text(pkt: EioPacket, eio: int) -> str:
    """A packet as it appears inside a text payload (binary data as base64)."""
    if isinstance(pkt.data, bytes):
        b64 = base64.b64encode(pkt.data).decode("ascii")
        return f"b{int(pkt.type)}{b64}" if eio == 3 else f"b{b64}"
    return f"{int(pkt.type)}{pkt.data}"


def _utf16_len(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def encode_polling_payload(pkts: Iterable[EioPacket], eio: int = 4) -> bytes:
    """Encode packets as a text polling body (v4 ``\\x1e``-joined, v3 length-prefixed)."""
    parts = [_encode_text(p, eio) for p in pkts]
    if eio == 3:
        return "".join(f"{_utf16_len(p)}:{p}" for p in parts).encode("utf-8", "surrogatepass")
    return RECORD_SEPARATOR.join(parts).encode("utf-8", "surrogatepass")


def encode_xhr2_payload(pkts: Iterable[EioPacket]) -> bytes:
    """Encode packets as a v3 XHR2 binary polling body (what v3 servers send when binary)."""
    out = bytearray()
    for pkt in pkts:
        if isinstance(pkt.data, bytes):
            body = bytes((int(pkt.type),)) + pkt.data
            out.append(1)
        else:
            body = f"{int(pkt.type)}{pkt.data}".encode("utf-8", "surrogatepass")
            out.append(0)
        out += bytes(int(d) for d in str(len(body)))
        out.append(255)
        out += body
    return bytes(out)


def decode_polling_payload(
    body: bytes, eio: int = 4, content_type: str | None = None
) -> list[EioPacket | DecodeError]:
    """Decode a polling request or response body into packets, errors in place of bad ones.

    Never raises. An empty body (a long-poll that carried nothing) is an empty list.
    ``content_type`` tells a v3 XHR2 binary body apart (its first byte, 0 or 1, does too).
    """
    if not body:
        return []
    if eio == 3 and (body[0] in (0, 1) or _is_octet_stream(content_type)):
        return _decode_xhr2(body)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [_error(f"payload is not valid UTF-8 ({exc.reason})", body, exc.start)]
    if text.startswith("___eio["):
        unwrapped = _unwrap_jsonp_response(text)
        if isinstance(unwrapped, DecodeError):
            return [unwrapped]
        text = unwrapped
    elif text.startswith("d=") or (content_type or "").startswith(
        "application/x-www-form-urlencoded"
    ):
        text = _unwrap_jsonp_post(text)
    if eio == 3:
        return _decode_v3_text(text)
    return _decode_v4_text(text)


def _is_octet_stream(content_type: str | None) -> bool:
    return content_type is not None and "octet-stream" in content_type


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8", "surrogatepass"))


def _shifted(error: DecodeError, by: int) -> DecodeError:
    return DecodeError(error.reason, error.raw, error.offset + by, error.layer)


def _too_many(text: str, index: int) -> DecodeError:
    rest = text[index:].encode("utf-8", "surrogatepass")
    return _error(
        f"payload holds more than {MAX_PAYLOAD_PACKETS} packets; the rest "
        f"({len(rest)} bytes) was not decoded",
        rest,
        _byte_offset(text, index),
    )


def _decode_v4_text(text: str) -> list[EioPacket | DecodeError]:
    out: list[EioPacket | DecodeError] = []
    pos = 0
    for part in text.split(RECORD_SEPARATOR):
        if len(out) >= MAX_PAYLOAD_PACKETS:
            out.append(_too_many(text, pos))
            break
        try:
            out.append(decode_eio_packet(part, 4))
        except CodecError as exc:
            out.append(_shifted(exc.error, _byte_offset(text, pos)))
        pos += len(part) + 1
    return out


def _to_utf16_units(text: str) -> str:
    """``text`` with each astral character split into its surrogate pair, so that indexing
    counts UTF-16 code units as the v3 length prefixes do."""
    return "".join(
        c if c <= "\uffff" else
        chr(0xD800 + ((ord(c) - 0x10000) >> 10)) + chr(0xDC00 + ((ord(c) - 0x10000) & 0x3FF))
        for c in text
    )


def _from_utf16_units(units: str) -> str:
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def _decode_v3_text(text: str) -> list[EioPacket | DecodeError]:
    astral = not text.isascii() and max(text) > "\uffff"
    units = _to_utf16_units(text) if astral else text

    def offset(index: int) -> int:
        return _byte_offset(_from_utf16_units(units[:index]) if astral else text, index)

    def rest(index: int) -> bytes:
        return (_from_utf16_units(units[index:]) if astral else text[index:]).encode(
            "utf-8", "surrogatepass"
        )

    out: list[EioPacket | DecodeError] = []
    pos = 0
    end = len(units)
    while pos < end:
        if len(out) >= MAX_PAYLOAD_PACKETS:
            out.append(_too_many(_from_utf16_units(units) if astral else text, pos))
            break
        colon = units.find(":", pos, pos + MAX_LENGTH_DIGITS + 1)
        digits = units[pos:colon] if colon >= 0 else ""
        if not digits.isdigit() or not digits.isascii():
            out.append(_error("v3 payload: expected '<length>:' before the packet",
                              rest(pos), offset(pos)))
            break
        length = int(digits)
        start = colon + 1
        chunk = units[start:start + length]
        if len(chunk) < length:
            out.append(_error(
                f"v3 payload: packet claims {length} characters but only {len(chunk)} remain",
                rest(pos), offset(pos)))
            break
        pos = start + length
        if not chunk:
            continue
        try:
            out.append(decode_eio_packet(_from_utf16_units(chunk) if astral else chunk, 3))
        except CodecError as exc:
            out.append(_shifted(exc.error, offset(start)))
    return out


def _decode_xhr2(body: bytes) -> list[EioPacket | DecodeError]:
    out: list[EioPacket | DecodeError] = []
    pos = 0
    end = len(body)
    while pos < end:
        if len(out) >= MAX_PAYLOAD_PACKETS:
            out.append(_error(
                f"payload holds more than {MAX_PAYLOAD_PACKETS} packets; the rest "
                f"({end - pos} bytes) was not decoded", body[pos:], pos))
            break
        marker = body[pos]
        if marker not in (0, 1):
            out.append(_error(
                f"XHR2 payload: packet marker must be 0 (text) or 1 (binary), got {marker}",
                body[pos:], pos))
            break
        stop = body.find(b"\xff", pos + 1, pos + 2 + MAX_LENGTH_DIGITS)
        digits = body[pos + 1:stop] if stop > pos + 1 else b""
        if not digits or any(d > 9 for d in digits):
            out.append(_error("XHR2 payload: expected length digits ending in byte 255",
                              body[pos:], pos))
            break
        length = int("".join(str(d) for d in digits))
        start = stop + 1
        chunk = body[start:start + length]
        if len(chunk) < length:
            out.append(_error(
                f"XHR2 payload: packet claims {length} bytes but only {len(chunk)} remain",
                body[pos:], pos))
            break
        pos = start + length
        try:
            if marker == 1:
                out.append(decode_eio_packet(chunk, 3))
                continue
            try:
                text = chunk.decode("utf-8")
            except UnicodeDecodeError as exc:
                out.append(_error(f"XHR2 payload: text packet is not valid UTF-8 ({exc.reason})",
                                  chunk, start + exc.start))
                continue
            out.append(decode_eio_packet(text, 3))
        except CodecError as exc:
            out.append(_shifted(exc.error, start))
    return out


_JSONP_RESPONSE = re.compile(r'___eio\[\d+\]\((".*")\);?\s*', re.DOTALL)
_JSONP_NEWLINE = re.compile(r"(\\)?\\n")


def _unwrap_jsonp_response(text: str) -> str | DecodeError:
    match = _JSONP_RESPONSE.fullmatch(text)
    if match is not None:
        try:
            # strict=False: python-engineio leaves the \x1e separators unescaped, which a
            # JavaScript string literal allows and strict JSON does not.
            inner = json.loads(match.group(1), strict=False)
        except ValueError:
            inner = None
        if isinstance(inner, str):
            return inner
    return _error("JSONP response is not ___eio[<n>](\"<payload>\");",
                  text.encode("utf-8", "surrogatepass"))


def _unwrap_jsonp_post(text: str) -> str:
    # engine.io-client sends newlines as backslash-n (form fields lose bare newlines) and a
    # backslash-n that was in the payload as backslash-backslash-n; undo both as engine.io does.
    values = parse_qs(text, keep_blank_values=True).get("d")
    if not values:
        return text
    return _JSONP_NEWLINE.sub(lambda m: "\\n" if m.group(1) else "\n", values[0])
