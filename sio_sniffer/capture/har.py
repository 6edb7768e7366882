"""Browser HAR files (Chrome, Firefox, Playwright) read as captures: HAR entries -> tap events.

A HAR is what a user can export from their browser's network panel without running the proxy.
Polling requests are ordinary entries (request.postData.text, response.content.text with an
optional ``encoding: base64``). WebSocket connections are entries with ``_resourceType:
"websocket"`` (or status 101) carrying ``_webSocketMessages``::

    [{"type": "send" | "receive", "time": 1718000000.123, "opcode": 1 | 2, "data": "..."}]

``data`` is the text of a text message and base64 of a binary one. Chrome and Firefox give
``time`` in epoch seconds, Playwright in epoch milliseconds; some Chrome builds give seconds of
a monotonic clock, which are placed relative to the entry's start.

Each entry's ``connection`` groups requests on one TCP connection when the browser recorded it;
otherwise each entry gets its own. HAR keeps no TCP open/close times, so every connection is
closed at the end of the file.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from sio_sniffer.capture import CaptureError, CaptureProblem, parse_iso
from sio_sniffer.model.tap import (
    ConnClose,
    ConnOpen,
    Direction,
    Headers,
    HttpRequest,
    HttpResponse,
    TapEvent,
    WsMessage,
    WsOpen,
    header,
)

MAX_HAR_BYTES = 1024 * 1024 * 1024


class EntryError(ValueError):
    """One HAR entry that cannot be turned into tap events."""


def _headers(obj: Any) -> Headers:
    if obj is None:
        return ()
    if not isinstance(obj, list):
        raise EntryError("headers is not a list")
    out = []
    for h in obj:
        if not isinstance(h, dict) or not isinstance(h.get("name"), str):
            raise EntryError("a header has no name")
        out.append((h["name"], str(h.get("value", ""))))
    return tuple(out)


def _target(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _version(http_version: Any) -> str:
    text = str(http_version or "").upper()
    if text in ("H2", "HTTP/2", "HTTP/2.0"):
        return "2"
    return text.removeprefix("HTTP/") or "1.1"


def _content(content: Any) -> tuple[bytes, bool]:
    """A response body and whether it is missing from the HAR (not recorded)."""
    if not isinstance(content, dict) or "text" not in content:
        return b"", True
    text = content["text"]
    if not isinstance(text, str):
        raise EntryError("response content text is not a string")
    if content.get("encoding") == "base64":
        try:
            return base64.b64decode(text, validate=True), False
        except binascii.Error as exc:
            raise EntryError("response content is not valid base64") from exc
    return text.encode(), False


def _message_ts(raw: Any, started: float, first: float | None) -> float:
    if not isinstance(raw, (int, float)) or isinstance(raw, bool) or raw < 0:
        return started
    t = float(raw)
    if t > 1e11:  # epoch milliseconds (Playwright)
        return t / 1000
    if t > 1e9:  # epoch seconds (Chrome, Firefox)
        return t
    return started + (t - (first if first is not None else t))  # monotonic seconds


@dataclass
class HarReader:
    """Iterates a HAR file as tap events in time order; bad entries go to ``problems``."""

    path: str | os.PathLike[str]
    problems: list[CaptureProblem] = field(default_factory=list, init=False)

    def __iter__(self) -> Iterator[TapEvent]:
        size = os.path.getsize(self.path)
        if size > MAX_HAR_BYTES:
            raise CaptureError(f"{self.path}: HAR file of {size} bytes is larger than the "
                               f"{MAX_HAR_BYTES}-byte limit")
        with open(self.path, "rb") as fh:
            data = fh.read()
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CaptureError(f"{self.path}: not a valid HAR file: {exc}") from exc
        log = doc.get("log") if isinstance(doc, dict) else None
        entries = log.get("entries") if isinstance(log, dict) else None
        if not isinstance(entries, list):
            raise CaptureError(f"{self.path}: not a HAR file (no log.entries)")
        events: list[TapEvent] = []
        conns: dict[str, int] = {}  # conn -> next request seq on it
        for index, entry in enumerate(entries):
            try:
                events.extend(self._entry(index, entry, conns))
            except (EntryError, ValueError, TypeError, KeyError) as exc:
                self.problems.append(CaptureProblem(str(self.path), index + 1,
                                                    f"HAR entry {index + 1}: {exc}"))
        events.sort(key=lambda e: e.ts)
        end = events[-1].ts if events else 0.0
        events.extend(ConnClose(conn=c, ts=end, by="client") for c in conns)
        yield from events

    def _entry(self, index: int, entry: Any, conns: dict[str, int]) -> list[TapEvent]:
        if not isinstance(entry, dict):
            raise EntryError("is not an object")
        req, resp = entry.get("request"), entry.get("response")
        if not isinstance(req, dict) or not isinstance(req.get("url"), str):
            raise EntryError("has no request.url")
        if not isinstance(resp, dict):
            resp = {}
        started = parse_iso(str(entry.get("startedDateTime")))
        duration = entry.get("time")
        finished = started + (float(duration) / 1000 if isinstance(duration, (int, float))
                              and duration > 0 else 0.0)
        messages = entry.get("_webSocketMessages")
        is_ws = (entry.get("_resourceType") == "websocket" or resp.get("status") == 101
                 or messages is not None)
        connection = entry.get("connection")
        conn = f"har:{connection}" if connection not in (None, "") and not is_ws else \
            f"har:{index + 1}"
        out: list[TapEvent] = []
        if conn not in conns:
            conns[conn] = 0
            out.append(ConnOpen(conn=conn, ts=started, peer=str(entry.get("serverIPAddress", ""))))
        seq = conns[conn]
        conns[conn] = seq + 1
        post = req.get("postData")
        body = b""
        if isinstance(post, dict) and isinstance(post.get("text"), str):
            body = post["text"].encode()
        request = HttpRequest(
            conn=conn, seq=seq, ts=started, method=str(req.get("method", "GET")),
            target=_target(req["url"]), version=_version(req.get("httpVersion")),
            headers=_headers(req.get("headers")), body=body,
        )
        out.append(request)
        if not is_ws:
            if not resp.get("status"):
                return out  # the browser never got an answer (aborted, blocked)
            body, missing = _content(resp.get("content"))
            out.append(HttpResponse(
                conn=conn, seq=seq, ts=finished, status=int(resp["status"]),
                reason=str(resp.get("statusText", "")), headers=_headers(resp.get("headers")),
                body=body, request=request, body_truncated=missing,
            ))
            return out
        response_headers = _headers(resp.get("headers"))
        extensions = header(response_headers, "sec-websocket-extensions") or ""
        out.append(WsOpen(conn=conn, ts=started, request=request,
                          response_headers=response_headers,
                          deflate="permessage-deflate" in extensions))
        if messages is None:
            return out
        if not isinstance(messages, list):
            raise EntryError("_webSocketMessages is not a list")
        first = next((m.get("time") for m in messages if isinstance(m, dict)), None)
        first_t = float(first) if isinstance(first, (int, float)) else None
        for n, msg in enumerate(messages):
            out.append(self._message(conn, n, msg, started, first_t))
        return out

    @staticmethod
    def _message(conn: str, n: int, msg: Any, started: float, first: float | None) -> WsMessage:
        if not isinstance(msg, dict):
            raise EntryError(f"WebSocket message {n + 1} is not an object")
        kind = msg.get("type")
        if kind not in ("send", "receive"):
            raise EntryError(f"WebSocket message {n + 1} has type {kind!r}")
        direction: Direction = "in" if kind == "send" else "out"
        opcode = msg.get("opcode", 1)
        data = msg.get("data", "")
        if not isinstance(data, str) or opcode not in (1, 2):
            raise EntryError(f"WebSocket message {n + 1} has opcode {opcode!r} / bad data")
        if opcode == 2:
            try:
                payload = base64.b64decode(data, validate=True)
            except binascii.Error as exc:
                raise EntryError(f"WebSocket message {n + 1}: binary data is not base64") \
                    from exc
        else:
            payload = data.encode()
        return WsMessage(conn=conn, ts=_message_ts(msg.get("time"), started, first),
                         dir=direction, opcode=int(opcode), payload=payload,
                         wire_size=len(payload))


def is_har(path: str | os.PathLike[str]) -> bool:
    """Whether a file looks like a HAR (a JSON document with a ``log``) rather than a capture."""
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip()
    if not head.startswith(b"{"):
        return False
    first_line = head.split(b"\n", 1)[0]
    return b'"format"' not in first_line and b'"log"' in head
