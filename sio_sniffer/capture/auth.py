"""Socket.IO CONNECT auth inside raw Engine.IO bytes: fingerprinting it, and finding it again.

Text form (Engine.IO v4 message ``4`` + Socket.IO CONNECT ``0``): ``40[/nsp,]{json auth}``;
polling bodies join such packets with ``\\x1e``. The msgpack parser sends the whole packet as one
binary message (``b`` + base64 in polling): a map ``{type: 0, nsp, data}``. The auth object
keeps its keys (the analysis reports which keys a client sent) and each value becomes its
fingerprint.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgpack
import orjson

from sio_sniffer.codec import CodecError, SioType, decode_sio_packet, split_sio_text
from sio_sniffer.model import redact_auth

_EIO_MESSAGE = "4"


def _redact_text_packet(packet: str) -> str:
    split = split_sio_text(packet[1:]) if packet.startswith(_EIO_MESSAGE) else None
    if split is None or split[0] != SioType.CONNECT:
        return packet
    _, head, payload = split
    try:
        auth = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return packet
    if not isinstance(auth, dict):
        return packet
    return _EIO_MESSAGE + head + orjson.dumps(redact_auth(auth) or {}).decode()


def _redact_msgpack(data: bytes) -> bytes:
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:  # anything that is not one msgpack object is left as it is
        return data
    if isinstance(obj, dict) and obj.get("type") == 0 and obj.get("data") is not None:
        obj["data"] = redact_auth(obj["data"])
        return bytes(msgpack.packb(obj))
    return data


def redact_connect_auth(payload: bytes, *, polling: bool, text: bool = True) -> bytes:
    """The same Engine.IO bytes with any Socket.IO CONNECT auth replaced by fingerprints."""
    if not text:
        return _redact_msgpack(payload)
    try:
        body = payload.decode()
    except UnicodeDecodeError:
        return payload
    if "40" not in body and not (polling and "b" in body):
        return payload
    parts = body.split("\x1e") if polling else [body]
    out: list[str] = []
    for part in parts:
        if polling and part.startswith("b"):
            try:
                raw = base64.b64decode(part[1:], validate=True)
            except binascii.Error:
                out.append(part)
                continue
            redacted = _redact_msgpack(raw)
            out.append(part if redacted is raw else "b" + base64.b64encode(redacted).decode())
        else:
            out.append(_redact_text_packet(part))
    return "\x1e".join(out).encode()


def _msgpack_connect(data: bytes) -> tuple[str, Any] | None:
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:  # not one msgpack object: not a msgpack CONNECT either
        return None
    if isinstance(obj, dict) and obj.get("type") == 0 and obj.get("data") is not None:
        return str(obj.get("nsp") or "/"), obj["data"]
    return None


def _text_connect(packet: str) -> tuple[str, Any] | None:
    if not packet.startswith(_EIO_MESSAGE):
        return None
    try:
        pkt = decode_sio_packet(packet[1:])
    except CodecError:
        return None
    if pkt.type != SioType.CONNECT or pkt.data is None:
        return None
    return pkt.namespace, pkt.data


def connect_auths(payload: bytes, *, polling: bool, text: bool = True) -> list[tuple[str, Any]]:
    """The (namespace, auth) of each Socket.IO CONNECT with auth in client->server bytes.

    Replay needs the auth itself, which the records only carry as a fingerprint.
    """
    if not text:
        found = _msgpack_connect(payload)
        return [found] if found is not None else []
    try:
        body = payload.decode()
    except UnicodeDecodeError:
        return []
    out: list[tuple[str, Any]] = []
    for part in body.split("\x1e") if polling else [body]:
        if polling and part.startswith("b"):
            try:
                found = _msgpack_connect(base64.b64decode(part[1:], validate=True))
            except binascii.Error:
                continue
        else:
            found = _text_connect(part)
        if found is not None:
            out.append(found)
    return out
