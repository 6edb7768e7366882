"""The capture file format: the header, one JSON line per tap event or record, migrations.

A capture is what a user sends to someone else, so it has to be readable by a later sio-sniffer
even when the sniffer that wrote it was killed, the disk filled up, or someone edited it by hand.

Format (JSON lines, UTF-8)::

    {"format": "sio-sniffer-capture", "version": 1, "sniffer": "0.1.0", "upstream": URL,
     "started": ISO, "capture_id": HEX, "segment": 0, "show_secrets": false}
    {"t": "conn_open", "conn": "c1", "ts": 1718000000.123456, "peer": "127.0.0.1:5555", ...}
    {"t": "http_request", ..., "headers": [["Host", "..."]], "body": "text" | "body_b64": "..."}
    {"t": "ws_message", ..., "payload": "42[\\"x\\"]" | "payload_b64": "..."}
    {"t": "record", "r": {Record.to_dict() form, bytes as {"$bytes": base64}}}

A capture made with ``--cluster`` names its node in the header (``"cluster_node": "A"``) and
keeps what the cluster view knew as record lines of the ``cluster.*`` kinds
(:data:`sio_sniffer.model.cluster.CLUSTER_FACTS`: peer deliveries, adapter emits, peer presence,
the view going off and on), written even when other records are not: ``report`` on one such
capture feeds them to the analysis in time order and judges the cluster's losses as the live
sniffer did. A reader that predates them reads them as plain records (and ignores them).

``t`` names the tap event class (snake case). Byte fields are stored as text when they are
valid UTF-8 (captures stay readable with ``less``) and as ``<field>_b64`` otherwise. Each
size-rotated segment starts with its own header carrying the same ``capture_id``.

Secrets: the values of secret headers (Authorization, Cookie, X-Api-Key...: the model's
``is_secret_header``), of secret-named query parameters and the Socket.IO CONNECT auth payload
are stored as ``sha256:xxxxxxxx`` fingerprints unless the line is made with
``show_secrets=True``. A replay of a capture without secrets needs the user to pass the auth
again (``replay --auth JSON``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from typing import Any, Union

from sio_sniffer.capture.auth import redact_connect_auth
from sio_sniffer.model import Record, redact_header, redact_url
from sio_sniffer.model.tap import (
    ConnClose,
    ConnOpen,
    Headers,
    HttpAbandoned,
    HttpRequest,
    HttpResponse,
    TapError,
    TapEvent,
    UpstreamError,
    WsControl,
    WsMessage,
    WsOpen,
)

FORMAT = "sio-sniffer-capture"
VERSION = 1
DEFAULT_MAX_LINE = 64 * 1024 * 1024

CaptureItem = Union[TapEvent, Record]  # noqa: UP007 - a runtime alias, py3.10 included

_TAGS: dict[type[Any], str] = {
    ConnOpen: "conn_open",
    HttpRequest: "http_request",
    HttpResponse: "http_response",
    HttpAbandoned: "http_abandoned",
    WsOpen: "ws_open",
    WsMessage: "ws_message",
    WsControl: "ws_control",
    ConnClose: "conn_close",
    TapError: "tap_error",
    UpstreamError: "upstream_error",
}
_CLASSES = {tag: cls for cls, tag in _TAGS.items()}
_BYTES_FIELDS = frozenset({"body", "payload", "raw"})
_HEADER_FIELDS = frozenset({"headers", "response_headers"})

Migration = Callable[[dict[str, Any]], dict[str, Any]]
# version N -> function turning a version-N line (header included) into a version-N+1 line.
MIGRATIONS: dict[int, Migration] = {}


def _put_bytes(out: dict[str, Any], name: str, value: bytes) -> None:
    try:
        out[name] = value.decode()
    except UnicodeDecodeError:
        out[name + "_b64"] = base64.b64encode(value).decode()


def _headers_out(headers: Headers, show_secrets: bool) -> list[list[str]]:
    if show_secrets:
        return [[k, v] for k, v in headers]
    return [[k, redact_header(k, v)] for k, v in headers]


def _is_polling(request: HttpRequest) -> bool:
    return "EIO=" in request.target


def event_to_dict(event: TapEvent, *, show_secrets: bool = False) -> dict[str, Any]:
    """The JSON-line form of one tap event (secrets fingerprinted unless ``show_secrets``)."""
    out: dict[str, Any] = {"t": _TAGS[type(event)]}
    for f in fields(event):
        value = getattr(event, f.name)
        if f.name in _HEADER_FIELDS:
            out[f.name] = _headers_out(value, show_secrets)
        elif f.name == "request":
            req = event_to_dict(value, show_secrets=show_secrets)
            req.pop("t")
            # The body went into the capture with the request line already; repeating it would
            # double the size of every polling exchange.
            req.pop("body", None)
            req.pop("body_b64", None)
            out["request"] = req
        elif f.name in _BYTES_FIELDS:
            if not show_secrets:
                value = _redact_bytes(event, value)
            _put_bytes(out, f.name, value)
        elif f.name == "target" and not show_secrets:
            out[f.name] = redact_url(value)
        else:
            out[f.name] = value
    return out


def _redact_bytes(event: TapEvent, value: bytes) -> bytes:
    if isinstance(event, HttpRequest) and event.method == "POST" and _is_polling(event):
        return redact_connect_auth(value, polling=True)
    if isinstance(event, WsMessage) and event.dir == "in":
        return redact_connect_auth(value, polling=False, text=event.opcode == 1)
    return value


class LineError(ValueError):
    """A line that is valid JSON but not a tap event or record this reader understands."""


def _get_bytes(d: Mapping[str, Any], name: str) -> bytes:
    if name + "_b64" in d:
        b64 = d[name + "_b64"]
        if not isinstance(b64, str):
            raise LineError(f"{name}_b64 is not a string")
        try:
            return base64.b64decode(b64, validate=True)
        except binascii.Error as exc:
            raise LineError(f"{name}_b64 is not valid base64") from exc
    value = d.get(name, "")
    if not isinstance(value, str):
        raise LineError(f"{name} is not a string")
    return value.encode()


def _get_headers(d: Mapping[str, Any], name: str) -> Headers:
    raw = d.get(name, [])
    if not isinstance(raw, list) or not all(
        isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h) for h in raw
    ):
        raise LineError(f"{name} must be a list of [name, value] string pairs")
    return tuple((k, v) for k, v in raw)


def _check(value: Any, types: type | tuple[type, ...], name: str) -> Any:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise LineError(f"{name} has the wrong type")
    if not isinstance(value, types):
        raise LineError(f"{name} has the wrong type ({type(value).__name__})")
    return value


_KNOWN_TYPES: dict[str, type | tuple[type, ...]] = {
    "conn": str, "ts": (int, float), "peer": str, "tls": bool, "seq": int, "method": str,
    "target": str, "version": str, "body_truncated": bool, "status": int, "reason": str,
    "deflate": bool, "dir": str, "opcode": int, "wire_size": int, "close_code": (int, type(None)),
    "close_reason": str, "by": str, "error": (str, type(None)), "layer": str, "offset": int,
    "url": str,
}


def event_from_dict(
    d: Mapping[str, Any], requests: Mapping[tuple[str, int], HttpRequest] | None = None
) -> TapEvent:
    """Re-create a tap event from its JSON-line form. ``requests`` supplies request bodies."""
    tag = d.get("t")
    cls = _CLASSES.get(tag) if isinstance(tag, str) else None
    if cls is None:
        raise LineError(f"unknown line type {tag!r}")
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        name = f.name
        if name in _HEADER_FIELDS:
            kwargs[name] = _get_headers(d, name)
        elif name == "request":
            req = d.get("request")
            if not isinstance(req, dict):
                raise LineError("request must be an object")
            key = (req.get("conn"), req.get("seq"))
            seen = requests.get(key) if requests is not None else None  # type: ignore[arg-type]
            kwargs[name] = seen if seen is not None else event_from_dict(
                {**req, "t": "http_request"}
            )
        elif name in _BYTES_FIELDS:
            kwargs[name] = _get_bytes(d, name)
        elif name in d:
            kwargs[name] = _check(d[name], _KNOWN_TYPES.get(name, object), name)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise LineError(f"{tag} line lacks {name!r}")
    return cls(**kwargs)  # type: ignore[no-any-return]


def record_to_dict(record: Record) -> dict[str, Any]:
    """A record line: the Record's flat JSON form plus the exact float timestamp."""
    return {"t": "record", "ts": record.ts, "r": record.to_dict()}


_RECORD_COMMON = ("conn", "eio_sid", "transport", "dir", "nsp", "sio_sid", "name", "ack_id",
                  "args", "size")


def _unbytes(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("$bytes"), str):
            return base64.b64decode(value["$bytes"])
        return {k: _unbytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unbytes(v) for v in value]
    return value


def record_from_dict(d: Mapping[str, Any]) -> Record:
    """Re-create a Record from a record line."""
    r = d.get("r")
    if not isinstance(r, dict) or not isinstance(r.get("event"), str):
        raise LineError("record line lacks r.event")
    ts = d.get("ts")
    if not isinstance(ts, (int, float)):
        raise LineError("record line lacks a numeric ts")
    r = _unbytes(r)
    common = {k: r[k] for k in _RECORD_COMMON if k in r}
    extra = {k: v for k, v in r.items() if k not in _RECORD_COMMON and k not in ("ts", "event")}
    return Record(event=r["event"], ts=float(ts), extra=extra, **common)
