"""`sio-sniffer redact`: a copy of a capture that can be shared.

Replaced by ``sha256:xxxxxxxx`` fingerprints (equal values keep equal fingerprints, so a reader
can still see that two clients sent the same token, or different ones):

- always: the values of Authorization / Proxy-Authorization / Cookie / Set-Cookie headers, the
  Socket.IO CONNECT auth values (the keys stay), and query parameters whose name says it holds a
  secret (``token``, ``auth``, ``key``, ``secret``, ``password``, ``session``...: Socket.IO v2
  clients put their token in the query);
- with ``--payloads``: every event and ack argument (the event names stay), the bodies of
  non-Engine.IO HTTP requests and responses (hook POSTs), binary attachments, the raw bytes kept
  with decode errors, and anything on an Engine.IO path that cannot be parsed; the structure of
  the session (who connected, which events, when, in what order) is kept.

A value that already is a fingerprint is left as it is, so redacting twice changes nothing.
Lines the reader cannot parse are reported with their line numbers and left out of the output
(exit code 1).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgpack
import orjson

from sio_sniffer.capture import (
    SECRET_HEADERS,
    CaptureError,
    CaptureHeader,
    CaptureItem,
    CaptureReader,
    CaptureWriter,
    redact_connect_auth,
    redact_target,
)
from sio_sniffer.model import SECRET_NAME, Record, fingerprint
from sio_sniffer.model.tap import (
    Headers,
    HttpRequest,
    HttpResponse,
    TapError,
    TapEvent,
    WsMessage,
    WsOpen,
)

_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{8}$")
# A Socket.IO text packet inside an Engine.IO v4 message: type, attachments, namespace, ack id,
# then the JSON payload.
_SIO_TEXT = re.compile(r"^4([0-6])(\d+-)?(/[^,]*,)?(\d*)(.*)$", re.S)
_EVENT_TYPES = ("2", "5")
_ACK_TYPES = ("3", "6")
_ARG_RECORDS = frozenset({"sio.event", "sio.ack", "http.request", "eio.message"})


def is_fingerprint(value: Any) -> bool:
    return isinstance(value, str) and _FINGERPRINT.match(value) is not None


def _fp(value: Any) -> Any:
    return value if is_fingerprint(value) else fingerprint(value)


def _fp_args(args: Any) -> Any:
    if isinstance(args, list):
        return [_fp(a) for a in args]
    return None if args is None else _fp(args)


def _fp_bytes(data: bytes) -> bytes:
    return data if is_fingerprint(data.decode("latin-1")) else fingerprint(data).encode()


def _headers(headers: Headers) -> Headers:
    return tuple((k, _fp(v) if k.lower() in SECRET_HEADERS else v) for k, v in headers)


def _redact_sio_text(packet: str) -> str | None:
    """The Engine.IO message ``packet`` with its event/ack args fingerprinted; None when it is
    not a Socket.IO packet this can rewrite (the caller then fingerprints all of it)."""
    m = _SIO_TEXT.match(packet)
    if m is None:
        return None
    kind, attachments, nsp, ack, payload = m.groups()
    if kind not in _EVENT_TYPES and kind not in _ACK_TYPES:
        return packet  # connect (auth handled elsewhere), disconnect, connect_error
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, list):
        return None
    keep = 1 if kind in _EVENT_TYPES and data else 0
    data = data[:keep] + [_placeholder_or_fp(a) for a in data[keep:]]
    return (f"4{kind}{attachments or ''}{nsp or ''}{ack}" + orjson.dumps(data).decode())


def _placeholder_or_fp(arg: Any) -> Any:
    if isinstance(arg, dict) and arg.get("_placeholder") is True and "num" in arg:
        return arg  # the attachment itself is fingerprinted where it travels
    return _fp(arg)


def _redact_msgpack_packet(data: bytes) -> bytes:
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:  # not one msgpack object: an attachment or junk, fingerprinted whole
        return _fp_bytes(data)
    if not isinstance(obj, dict) or "type" not in obj:
        return _fp_bytes(data)
    if obj.get("type") in (2, 5) and isinstance(obj.get("data"), list) and obj["data"]:
        obj["data"] = obj["data"][:1] + [_fp(_plain(a)) for a in obj["data"][1:]]
    elif obj.get("type") in (3, 6) and isinstance(obj.get("data"), list):
        obj["data"] = [_fp(_plain(a)) for a in obj["data"]]
    return bytes(msgpack.packb(obj))


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, (bytearray, memoryview)) else value


def redact_eio_payload(data: bytes, *, polling: bool, text: bool = True) -> bytes:
    """Engine.IO bytes (one WebSocket message or one v4 polling body) with event arguments and
    binary attachments fingerprinted."""
    if not text:
        return _redact_msgpack_packet(data)
    try:
        body = data.decode()
    except UnicodeDecodeError:
        return _fp_bytes(data)
    out: list[str] = []
    for part in body.split("\x1e") if polling else [body]:
        if part.startswith("b"):
            try:
                raw = base64.b64decode(part[1:], validate=True)
            except binascii.Error:
                return _fp_bytes(data)
            out.append("b" + base64.b64encode(_redact_msgpack_packet(raw)).decode())
        elif part.startswith("4"):
            rewritten = _redact_sio_text(part)
            if rewritten is None:
                return _fp_bytes(data)
            out.append(rewritten)
        else:
            out.append(part)  # open, ping, pong, close, upgrade, noop: no user data
    return "\x1e".join(out).encode()


def _is_eio(target: str, path: str) -> bool:
    return urlsplit(target).path.startswith(path.rstrip("/"))


class Redactor:
    """Rewrites tap events and records; ``auth`` says whether raw CONNECT auth may be present."""

    def __init__(self, *, payloads: bool, auth_in_bytes: bool, path: str = "/socket.io/") -> None:
        self.payloads = payloads
        self.auth_in_bytes = auth_in_bytes
        self.path = path

    def item(self, item: CaptureItem) -> CaptureItem:
        if isinstance(item, Record):
            return self.record(item)
        return self.event(item)

    def request(self, req: HttpRequest) -> HttpRequest:
        body = req.body
        eio = _is_eio(req.target, self.path)
        if self.auth_in_bytes and eio and req.method == "POST":
            body = redact_connect_auth(body, polling=True)
        if self.payloads and body:
            body = redact_eio_payload(body, polling=True) if eio else _fp_bytes(body)
        return dataclasses.replace(req, target=redact_target(req.target),
                                   headers=_headers(req.headers), body=body)

    def event(self, ev: TapEvent) -> TapEvent:
        if isinstance(ev, HttpRequest):
            return self.request(ev)
        if isinstance(ev, HttpResponse):
            body = ev.body
            if self.payloads and body:
                eio = _is_eio(ev.request.target, self.path) and ev.status < 400
                encoded = any(k.lower() == "content-encoding" for k, _ in ev.headers)
                body = redact_eio_payload(body, polling=True) if eio and not encoded \
                    else _fp_bytes(body)
            return dataclasses.replace(ev, headers=_headers(ev.headers),
                                       request=self.request(ev.request), body=body)
        if isinstance(ev, WsOpen):
            return dataclasses.replace(ev, request=self.request(ev.request),
                                       response_headers=_headers(ev.response_headers))
        if isinstance(ev, WsMessage):
            payload = ev.payload
            if self.auth_in_bytes and ev.dir == "in":
                payload = redact_connect_auth(payload, polling=False, text=ev.opcode == 1)
            if self.payloads:
                payload = redact_eio_payload(payload, polling=False, text=ev.opcode == 1)
            return dataclasses.replace(ev, payload=payload)
        if isinstance(ev, TapError) and self.payloads:
            return dataclasses.replace(ev, raw=_fp_bytes(ev.raw))
        return ev

    def record(self, rec: Record) -> Record:
        extra = dict(rec.extra)
        if isinstance(extra.get("query"), dict):
            extra["query"] = {k: _fp(v) if SECRET_NAME.search(k) else v
                              for k, v in extra["query"].items()}
        if "auth" in extra and extra["auth"] is not None:
            extra["auth"] = _fp(extra["auth"])
        args = rec.args
        if self.payloads:
            if rec.event in ("sio.event", "sio.ack"):
                args = _fp_args(args)
            elif rec.event in _ARG_RECORDS and args is not None:
                args = _fp(args)
            if "raw" in extra:
                extra["raw"] = _fp(extra["raw"])
            if extra.get("body"):
                extra["body"] = _fp(extra["body"])
        return dataclasses.replace(rec, args=args, extra=extra)


class _RedactedWriter(CaptureWriter):
    """A CaptureWriter whose header keeps the source capture's identity and says "redacted".

    The writer is made with ``show_secrets=True`` so it stores exactly what the Redactor made.
    """

    def __init__(self, path: Path, source: CaptureHeader, payloads: bool,
                 on_problem: Callable[[str], None]) -> None:
        self._source = source
        self._payloads = payloads
        super().__init__(path, upstream=source.upstream, show_secrets=True, on_problem=on_problem)
        self.capture_id = source.capture_id

    def header(self) -> dict[str, Any]:
        head = super().header()
        head.update(started=self._source.started, capture_id=self._source.capture_id,
                    segment=self._source.segment, sniffer=self._source.sniffer,
                    show_secrets=False, redacted="payloads" if self._payloads else "secrets")
        return head


def redact_file(source: Path, out: Path, *, payloads: bool,
                report: Callable[[str], None]) -> int:
    """Write the redacted copy of ``source`` to ``out``; the number of unreadable lines."""
    reader = CaptureReader(source)
    items = iter(reader)
    first = next(items, None)  # reads the header (CaptureError if it is not a capture)
    header = reader.header
    if header is None:
        raise CaptureError(f"{source}: empty capture")
    failures: list[str] = []
    writer = _RedactedWriter(out, header, payloads, failures.append)
    redactor = Redactor(payloads=payloads, auth_in_bytes=header.show_secrets)
    stream: Iterable[CaptureItem] = items if first is None else _chain(first, items)
    for item in stream:
        if isinstance(item, Record):
            writer(redactor.record(item))
        else:
            writer.tap(redactor.event(item))
    writer.close()
    if failures:
        raise OSError(f"{out}: {failures[0]}")
    for problem in reader.problems:
        report(f"sio-sniffer redact: {problem} (left out of the copy)")
    return len(reader.problems)


def _chain(first: CaptureItem, rest: Iterable[CaptureItem]) -> Iterable[CaptureItem]:
    yield first
    yield from rest


def default_output(path: Path) -> Path:
    """``cap.jsonl`` -> ``cap.redacted.jsonl``."""
    return path.with_name(f"{path.stem}.redacted{path.suffix}" if path.suffix
                          else f"{path.name}.redacted")
