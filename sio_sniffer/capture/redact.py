"""`sio-sniffer redact`: a copy of a capture that can be shared.

Replaced by ``sha256:xxxxxxxx`` fingerprints (equal values keep equal fingerprints, so a reader
can still see that two clients sent the same token, or different ones):

- always: the values of secret headers (Authorization, Cookie, Set-Cookie, X-Api-Key...), the
  Socket.IO CONNECT auth values (the keys stay), and query parameters whose name says it holds a
  secret (``token``, ``auth``, ``key``, ``secret``, ``password``, ``session``...: Socket.IO v2
  clients put their token in the query); which names are secret is the model's one policy
  (:mod:`sio_sniffer.model.secrets`);
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
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgpack
import orjson

from sio_sniffer import model
from sio_sniffer.capture import (
    CaptureError,
    CaptureHeader,
    CaptureItem,
    CaptureReader,
    CaptureWriter,
    redact_connect_auth,
)
from sio_sniffer.codec import SioType, split_sio_text
from sio_sniffer.model import (
    Record,
    find_secrets,
    fingerprint,
    fingerprint_once,
    is_fingerprint,
    is_secret_header,
    redact_auth,
    redact_header,
    redact_params,
    redact_url,
)
from sio_sniffer.model.tap import (
    Headers,
    HttpRequest,
    HttpResponse,
    TapError,
    TapEvent,
    WsMessage,
    WsOpen,
)

_EVENT_TYPES = (SioType.EVENT, SioType.BINARY_EVENT)
_ACK_TYPES = (SioType.ACK, SioType.BINARY_ACK)
# Records whose ``args`` are a sender's payload: event and ack arguments list one per argument
# (the event name stays), the others are one JSON body each.
_ARG_LIST_RECORDS = frozenset({model.SIO_EVENT, model.SIO_ACK})
_ARG_RECORDS = _ARG_LIST_RECORDS | {model.HTTP_REQUEST, model.EIO_MESSAGE}


def _fp_args(args: Any) -> Any:
    if isinstance(args, list):
        return [fingerprint_once(a) for a in args]
    return None if args is None else fingerprint_once(args)


def _fp_bytes(data: bytes) -> bytes:
    return data if is_fingerprint(data.decode("latin-1")) else fingerprint(data).encode()


def _headers(headers: Headers) -> Headers:
    return tuple((k, redact_header(k, v)) for k, v in headers)


def _redact_sio_text(packet: str) -> str | None:
    """The Engine.IO message ``packet`` with its event/ack args fingerprinted; None when it is
    not a Socket.IO packet this can rewrite (the caller then fingerprints all of it)."""
    split = split_sio_text(packet[1:])
    if split is None:
        return None
    kind, head, payload = split
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
    return "4" + head + orjson.dumps(data).decode()


def _placeholder_or_fp(arg: Any) -> Any:
    if isinstance(arg, dict) and arg.get("_placeholder") is True and "num" in arg:
        return arg  # the attachment itself is fingerprinted where it travels
    return fingerprint_once(arg)


def _redact_msgpack_packet(data: bytes) -> bytes:
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:  # not one msgpack object: an attachment or junk, fingerprinted whole
        return _fp_bytes(data)
    if not isinstance(obj, dict) or "type" not in obj:
        return _fp_bytes(data)
    if obj.get("type") in (2, 5) and isinstance(obj.get("data"), list) and obj["data"]:
        obj["data"] = obj["data"][:1] + [fingerprint_once(_plain(a)) for a in obj["data"][1:]]
    elif obj.get("type") in (3, 6) and isinstance(obj.get("data"), list):
        obj["data"] = [fingerprint_once(_plain(a)) for a in obj["data"]]
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
    """Rewrites tap events and records. CONNECT auth in the bytes is fingerprinted whatever the
    header says: a capture made with ``--show-secrets``, or by an older sniffer, has it in clear
    (values that already are fingerprints stay)."""

    def __init__(self, *, payloads: bool, path: str = "/socket.io/") -> None:
        self.payloads = payloads
        self.path = path

    def item(self, item: CaptureItem) -> CaptureItem:
        if isinstance(item, Record):
            return self.record(item)
        return self.event(item)

    def request(self, req: HttpRequest) -> HttpRequest:
        body = req.body
        eio = _is_eio(req.target, self.path)
        if eio and req.method == "POST":
            body = redact_connect_auth(body, polling=True)
        if self.payloads and body:
            body = redact_eio_payload(body, polling=True) if eio else _fp_bytes(body)
        return dataclasses.replace(req, target=redact_url(req.target),
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
            if ev.dir == "in":
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
            extra["query"] = redact_params(extra["query"])
        if "auth" in extra and extra["auth"] is not None:
            extra["auth"] = redact_auth(extra["auth"])
        args = rec.args
        if self.payloads:
            if rec.event in _ARG_LIST_RECORDS:
                args = _fp_args(args)
            elif rec.event in _ARG_RECORDS and args is not None:
                args = fingerprint_once(args)
            if "raw" in extra:
                extra["raw"] = fingerprint_once(extra["raw"])
            if extra.get("body"):
                extra["body"] = fingerprint_once(extra["body"])
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
    redactor = Redactor(payloads=payloads)
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


# Where a capture line holds a sender's payload: the bytes of a tap event, the arguments and
# bodies of a record. What looks secret there is the application's data, which redact leaves
# alone unless --payloads; anywhere else it is something the policy missed.
_TAP_PAYLOAD_FIELDS = ("body", "payload", "raw")
_RECORD_PAYLOAD_FIELDS = ("args", "body", "raw", "body_start")


@dataclasses.dataclass
class Leftovers:
    """What still looks secret in a redacted copy, line by line (1-based), named, never shown."""

    outside_payloads: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    in_payloads: dict[int, list[str]] = dataclasses.field(default_factory=dict)


def find_leftovers(path: Path) -> Leftovers:
    """Scan a capture (a redacted copy) for anything secret-looking still in clear."""
    found = Leftovers()
    with path.open("rb") as f:
        for number, line in enumerate(f, 1):
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # redact writes only JSON; a reader of the copy reports the rest
            if not isinstance(obj, dict):
                continue
            payloads: list[Any] = []
            if obj.get("t") == "record" and isinstance(obj.get("r"), dict):
                payloads += [obj["r"].pop(k) for k in _RECORD_PAYLOAD_FIELDS if k in obj["r"]]
            else:
                for holder in (obj, obj.get("request")):
                    if isinstance(holder, dict):
                        payloads += [holder.pop(k) for k in _TAP_PAYLOAD_FIELDS if k in holder]
            outside = [f"header {k!r}" for holder in (obj, obj.get("request"))
                       if isinstance(holder, dict)
                       for field in ("headers", "response_headers")
                       for k, v in _pairs(holder.get(field))
                       if is_secret_header(k) and not is_fingerprint(v)]
            outside += find_secrets(orjson.dumps(obj).decode())
            inside = [what for p in payloads
                      for what in find_secrets(p if isinstance(p, str) else
                                               orjson.dumps(p, default=repr).decode())]
            if outside:
                found.outside_payloads[number] = list(dict.fromkeys(outside))
            if inside:
                found.in_payloads[number] = list(dict.fromkeys(inside))
    return found


def _pairs(headers: Any) -> list[tuple[str, str]]:
    if not isinstance(headers, list):
        return []
    return [(h[0], h[1]) for h in headers
            if isinstance(h, list) and len(h) == 2 and all(isinstance(x, str) for x in h)]


def _chain(first: CaptureItem, rest: Iterable[CaptureItem]) -> Iterable[CaptureItem]:
    yield first
    yield from rest


def default_output(path: Path) -> Path:
    """``cap.jsonl`` -> ``cap.redacted.jsonl``."""
    return path.with_name(f"{path.stem}.redacted{path.suffix}" if path.suffix
                          else f"{path.name}.redacted")
