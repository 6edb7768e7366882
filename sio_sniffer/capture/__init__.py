"""Capture files: every tap event (and optionally every record) as one JSON line.

A capture is what a user sends to someone else, so it has to be readable by a later sio-sniffer
even when the sniffer that wrote it was killed, the disk filled up, or someone edited it by hand.

Format (JSON lines, UTF-8)::

    {"format": "sio-sniffer-capture", "version": 1, "sniffer": "0.1.0", "upstream": URL,
     "started": ISO, "capture_id": HEX, "segment": 0, "show_secrets": false}
    {"t": "conn_open", "conn": "c1", "ts": 1718000000.123456, "peer": "127.0.0.1:5555", ...}
    {"t": "http_request", ..., "headers": [["Host", "..."]], "body": "text" | "body_b64": "..."}
    {"t": "ws_message", ..., "payload": "42[\\"x\\"]" | "payload_b64": "..."}
    {"t": "record", "r": {Record.to_dict() form, bytes as {"$bytes": base64}}}

``t`` names the tap event class (snake case). Byte fields are stored as text when they are
valid UTF-8 (captures stay readable with ``less``) and as ``<field>_b64`` otherwise. Every line is
written with one unbuffered ``write`` so a SIGKILL leaves a file that reads to its last complete
line. Each size-rotated segment starts with its own header carrying the same ``capture_id``.

Secrets: the values of Authorization / Cookie / Set-Cookie / Proxy-Authorization headers and the
Socket.IO CONNECT auth payload are stored as ``sha256:xxxxxxxx`` fingerprints unless the writer
was made with ``show_secrets=True``. A replay of a capture without secrets needs the user to pass
the auth again (``replay --auth JSON``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import heapq
import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Union
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import msgpack
import orjson
import structlog

from sio_sniffer import __version__
from sio_sniffer.model import SECRET_NAME, Record, fingerprint, iso_ts, json_default
from sio_sniffer.model.tap import (
    ConnClose,
    ConnOpen,
    Headers,
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
SECRET_HEADERS = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
DEFAULT_MAX_LINE = 64 * 1024 * 1024

CaptureItem = Union[TapEvent, Record]  # noqa: UP007 - a runtime alias, py3.10 included

_TAGS: dict[type[Any], str] = {
    ConnOpen: "conn_open",
    HttpRequest: "http_request",
    HttpResponse: "http_response",
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


# Redaction of Socket.IO CONNECT auth inside raw Engine.IO bytes.
#
# Text form (Engine.IO v4 message `4` + Socket.IO CONNECT `0`): `40[/nsp,]{json auth}`; polling
# bodies join such packets with \x1e. The msgpack parser sends the whole packet as one binary
# message (`b` + base64 in polling): a map {type: 0, nsp, data}. The auth object keeps its keys
# (the analysis reports which keys a client sent) and each value becomes its fingerprint.
_TEXT_CONNECT = re.compile(r"^40(/[^,{]*,)?(\{.*\})$", re.S)


def _redact_auth(auth: Any) -> Any:
    if isinstance(auth, dict):
        return {str(k): fingerprint(v) for k, v in auth.items()}
    return fingerprint(auth)


def _redact_text_packet(packet: str) -> str:
    m = _TEXT_CONNECT.match(packet)
    if m is None:
        return packet
    try:
        auth = orjson.loads(m.group(2))
    except orjson.JSONDecodeError:
        return packet
    return "40" + (m.group(1) or "") + orjson.dumps(_redact_auth(auth)).decode()


def _redact_msgpack(data: bytes) -> bytes:
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception:  # anything that is not one msgpack object is left as it is
        return data
    if isinstance(obj, dict) and obj.get("type") == 0 and obj.get("data") is not None:
        obj["data"] = _redact_auth(obj["data"])
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
            if found is not None:
                out.append(found)
            continue
        m = _TEXT_CONNECT.match(part)
        if m is None:
            continue
        try:
            out.append(((m.group(1) or "/,")[:-1], orjson.loads(m.group(2))))
        except orjson.JSONDecodeError:
            continue
    return out


def _put_bytes(out: dict[str, Any], name: str, value: bytes) -> None:
    try:
        out[name] = value.decode()
    except UnicodeDecodeError:
        out[name + "_b64"] = base64.b64encode(value).decode()


_FINGERPRINT_VALUE = re.compile(r"^sha256:[0-9a-f]{8}$")


def _fingerprint_once(value: str) -> str:
    return value if _FINGERPRINT_VALUE.match(value) else fingerprint(value)


def redact_target(target: str) -> str:
    """A request target with the values of secret-looking query parameters fingerprinted."""
    parts = urlsplit(target)
    if not parts.query:
        return target
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(SECRET_NAME.search(k) for k, _ in pairs):
        return target
    query = "&".join(
        f"{quote(k, safe='')}="
        f"{quote(_fingerprint_once(v) if SECRET_NAME.search(k) else v, safe='')}"
        for k, v in pairs)
    return urlunsplit(parts._replace(query=query))


def _headers_out(headers: Headers, show_secrets: bool) -> list[list[str]]:
    if show_secrets:
        return [[k, v] for k, v in headers]
    return [[k, fingerprint(v) if k.lower() in SECRET_HEADERS else v] for k, v in headers]


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
            out[f.name] = redact_target(value)
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




OnProblem = Callable[[str], None]


def _log_problem(message: str) -> None:
    structlog.get_logger("sio_sniffer.capture").warning("capture_problem", problem=message)


class CaptureWriter:
    """Appends tap events and records to a capture file; never raises into the caller.

    A failed write (disk full, file removed, permissions) is reported once through
    ``on_problem``; lines are then counted as lost and writing is retried every
    ``retry_after`` seconds, so a capture resumes when space comes back. The traffic the lines
    describe has been forwarded already: the writer only ever loses its own copy.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        upstream: str = "",
        show_secrets: bool = False,
        records: bool = True,
        rotate_bytes: int | None = None,
        on_problem: OnProblem = _log_problem,
        retry_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self.upstream = upstream
        self.show_secrets = show_secrets
        self.records = records
        self.rotate_bytes = rotate_bytes
        self.capture_id = uuid.uuid4().hex
        self.segment = 0
        self.lines_written = 0
        self.lines_lost = 0
        self.paths: list[Path] = []
        self._on_problem = on_problem
        self._retry_after = retry_after
        self._clock = clock
        self._fd: int | None = None
        self._size = 0
        self._failed_at: float | None = None
        self._closed = False
        self._reported = False
        self._open_segment()

    def segment_path(self, n: int) -> Path:
        """Where segment ``n`` goes: the given path, then ``<path>.1``, ``<path>.2``, ..."""
        return self.path if n == 0 else self.path.with_name(f"{self.path.name}.{n}")

    def header(self) -> dict[str, Any]:
        """The first line of every segment."""
        return {
            "format": FORMAT, "version": VERSION, "sniffer": __version__,
            "upstream": self.upstream, "started": iso_ts(time.time()),
            "capture_id": self.capture_id, "segment": self.segment,
            "show_secrets": self.show_secrets,
        }

    def _open_segment(self) -> None:
        path = self.segment_path(self.segment)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:
            self._fd = None
            self._fail(f"cannot open capture file {path}: {exc.strerror or exc}")
            return
        self.paths.append(path)
        self._write_line(self.header())

    def tap(self, event: TapEvent) -> None:
        """Store one tap event."""
        try:
            line = event_to_dict(event, show_secrets=self.show_secrets)
        except Exception as exc:  # a capture bug must never reach the traffic path
            self._fail(f"cannot serialise {type(event).__name__}: {exc!r}")
            return
        self._write_line(line)

    def __call__(self, record: Record) -> None:
        """Sink interface: store one record (when the writer keeps records)."""
        if self.records:
            self._write_line(record_to_dict(record))

    def _write_line(self, obj: Mapping[str, Any]) -> None:
        if self._closed:
            return
        if self._failed_at is not None:
            if self._clock() - self._failed_at < self._retry_after:
                self.lines_lost += 1
                return
            self._resume()
            if self._failed_at is not None:
                self.lines_lost += 1
                return
        try:
            data = orjson.dumps(obj, default=json_default) + b"\n"
        except (TypeError, orjson.JSONEncodeError) as exc:
            self._fail(f"cannot serialise a capture line: {exc}")
            return
        if (self.rotate_bytes is not None and self._size > 0
                and self._size + len(data) > self.rotate_bytes and obj.get("format") != FORMAT):
            self._rotate()
        if self._fd is None:
            self.lines_lost += 1
            return
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
                self._size += n
        except OSError as exc:
            self.lines_lost += 1
            self._fail(f"capture write to {self.segment_path(self.segment)} failed: "
                       f"{exc.strerror or exc}; traffic keeps flowing, lines are being lost")
            return
        self.lines_written += 1

    def _rotate(self) -> None:
        self._close_fd()
        self.segment += 1
        self._open_segment()

    def _resume(self) -> None:
        self._failed_at = None
        if self._fd is None:
            self._open_segment()
            if self._failed_at is not None:
                return
        try:
            # A failed write may have left half a line; the newline keeps it a separate (bad)
            # line so the reader names it instead of gluing it to the next one.
            os.write(self._fd, b"\n")  # type: ignore[arg-type]
        except OSError:
            self._failed_at = self._clock()
            return
        self._on_problem(f"capture resumed after losing {self.lines_lost} line(s)")

    def _fail(self, message: str) -> None:
        first = not self._reported
        self._failed_at = self._clock()
        if first:
            self._reported = True
            with contextlib.suppress(Exception):  # reporting must not raise either
                self._on_problem(message)

    def _close_fd(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError as exc:
                self._fail(f"closing capture file failed: {exc.strerror or exc}")
            self._fd = None

    def close(self) -> None:
        """Close the current segment; later writes are ignored."""
        self._close_fd()
        self._closed = True




class CaptureError(Exception):
    """A file that cannot be read as a capture at all (not one, or from a newer version)."""


@dataclass(frozen=True, slots=True)
class CaptureProblem:
    """A line the reader had to skip; reading went on after it."""

    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class CaptureHeader:
    """What the first line of a capture says about it."""

    path: str
    version: int
    sniffer: str
    upstream: str
    started: str
    capture_id: str
    segment: int = 0
    show_secrets: bool = False


Migration = Callable[[dict[str, Any]], dict[str, Any]]
# version N -> function turning a version-N line (header included) into a version-N+1 line.
MIGRATIONS: dict[int, Migration] = {}


@dataclass
class CaptureReader:
    """Iterates a capture file: tap events and records in file order.

    Bad lines (truncated, not JSON, too deep, too long, of unknown shape) are skipped and listed
    in ``problems`` with their line numbers; everything readable is still yielded.
    """

    path: str | os.PathLike[str]
    max_line: int = DEFAULT_MAX_LINE
    migrations: Mapping[int, Migration] = field(default_factory=lambda: MIGRATIONS)
    header: CaptureHeader | None = field(default=None, init=False)
    problems: list[CaptureProblem] = field(default_factory=list, init=False)

    def _problem(self, line: int, reason: str) -> None:
        self.problems.append(CaptureProblem(str(self.path), line, reason))

    def _read_header(self, raw: bytes) -> int:
        try:
            head = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise CaptureError(f"{self.path}:1: not a sio-sniffer capture (first line is not "
                               f"JSON: {exc})") from exc
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            raise CaptureError(f"{self.path}:1: not a sio-sniffer capture (the first line has "
                               f"no \"format\": \"{FORMAT}\")")
        version = head.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise CaptureError(f"{self.path}:1: capture header has no valid version")
        if version > VERSION:
            raise CaptureError(f"{self.path}:1: capture format version {version} was written by "
                               f"a newer sio-sniffer ({head.get('sniffer')}); this one reads up "
                               f"to version {VERSION}")
        for v in range(version, VERSION):
            if v not in self.migrations:
                raise CaptureError(f"{self.path}:1: no migration from capture version {v}")
        head = self._migrate(head, version)
        self.header = CaptureHeader(
            path=str(self.path), version=version, sniffer=str(head.get("sniffer", "")),
            upstream=str(head.get("upstream", "")), started=str(head.get("started", "")),
            capture_id=str(head.get("capture_id", self.path)),
            segment=int(head.get("segment", 0) or 0),
            show_secrets=bool(head.get("show_secrets", False)),
        )
        return version

    def _migrate(self, obj: dict[str, Any], version: int) -> dict[str, Any]:
        for v in range(version, VERSION):
            obj = self.migrations[v](obj)
        return obj

    def __iter__(self) -> Iterator[CaptureItem]:
        requests: dict[tuple[str, int], HttpRequest] = {}
        with open(self.path, "rb") as fh:
            first = fh.readline(self.max_line + 1)
            if not first:
                raise CaptureError(f"{self.path}: empty file, not a capture")
            version = self._read_header(first)
            lineno = 1
            while True:
                raw = fh.readline(self.max_line + 1)
                if not raw:
                    return
                lineno += 1
                if len(raw) > self.max_line and not raw.endswith(b"\n"):
                    while raw and not raw.endswith(b"\n"):
                        raw = fh.readline(1 << 20)
                    self._problem(lineno, f"line longer than {self.max_line} bytes, skipped")
                    continue
                if not raw.strip():
                    continue
                complete = raw.endswith(b"\n")
                item = self._parse(raw, lineno, version, requests, complete)
                if item is not None:
                    yield item

    def _parse(self, raw: bytes, lineno: int, version: int,
               requests: dict[tuple[str, int], HttpRequest], complete: bool) -> CaptureItem | None:
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            what = "truncated line (the writer stopped mid-line)" if not complete else "not JSON"
            self._problem(lineno, f"{what}: {exc}")
            return None
        if not isinstance(obj, dict):
            self._problem(lineno, f"expected a JSON object, got {type(obj).__name__}")
            return None
        if obj.get("format") == FORMAT:
            # The next segment of a rotated capture concatenated onto this one.
            return None
        try:
            obj = self._migrate(obj, version)
            if obj.get("t") == "record":
                return record_from_dict(obj)
            event = event_from_dict(obj, requests)
        except (LineError, TypeError, ValueError, KeyError) as exc:
            self._problem(lineno, str(exc))
            return None
        if isinstance(event, HttpRequest):
            requests[(event.conn, event.seq)] = event
        elif isinstance(event, HttpResponse):
            requests.pop((event.conn, event.seq), None)
        return event


def item_ts(item: CaptureItem) -> float:
    """The timestamp a capture item sorts by."""
    return float(item.ts)


def _prefix_conn(item: CaptureItem, prefix: str) -> CaptureItem:
    if isinstance(item, Record):
        return replace(item, conn=None if item.conn is None else prefix + item.conn)
    if isinstance(item, (HttpResponse, WsOpen)):
        req = replace(item.request, conn=prefix + item.request.conn)
        return replace(item, conn=prefix + item.conn, request=req)
    return replace(item, conn=prefix + item.conn)


def _prefixed(items: Iterable[CaptureItem], prefix: str) -> Iterator[CaptureItem]:
    for item in items:
        yield _prefix_conn(item, prefix)


def merge(readers: Iterable[Iterable[CaptureItem]], ids: Iterable[str] | None = None
          ) -> Iterator[CaptureItem]:
    """Merge several captures by time.

    ``ids`` names the capture each reader belongs to; when more than one capture is merged,
    connection ids get a ``<n>/`` prefix so ``c1`` of one server is not ``c1`` of another
    (segments of one rotated capture share an id and keep their connection ids).
    """
    readers = list(readers)
    id_list = list(ids) if ids is not None else [str(i) for i in range(len(readers))]
    distinct = sorted(set(id_list), key=id_list.index)
    streams: list[Iterable[CaptureItem]] = []
    for reader, cid in zip(readers, id_list, strict=True):
        if len(distinct) > 1:
            streams.append(_prefixed(reader, f"{distinct.index(cid) + 1}/"))
        else:
            streams.append(reader)
    return heapq.merge(*streams, key=item_ts)


def capture_id_of(path: str | os.PathLike[str]) -> str:
    """The capture_id in a file's header (the path itself when the header has none)."""
    with open(path, "rb") as fh:
        first = fh.readline(DEFAULT_MAX_LINE)
    try:
        head = orjson.loads(first)
    except orjson.JSONDecodeError:
        return str(path)
    if isinstance(head, dict) and isinstance(head.get("capture_id"), str):
        return str(head["capture_id"])
    return str(path)


def parse_iso(ts: str) -> float:
    """Seconds since the epoch from an ISO-8601 time (``Z`` or offset; naive means UTC)."""
    dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
