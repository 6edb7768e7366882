"""Reading captures: line by line, skipping (and naming, by line number) what cannot be read.

Also merging several captures by time, for reports over more than one server.
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import orjson

from sio_sniffer.capture import format as fmt
from sio_sniffer.capture.format import (
    DEFAULT_MAX_LINE,
    FORMAT,
    MIGRATIONS,
    CaptureItem,
    LineError,
    Migration,
    event_from_dict,
    record_from_dict,
)
from sio_sniffer.model import Record
from sio_sniffer.model.tap import HttpRequest, HttpResponse, WsOpen


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
    cluster_node: str | None = None  # written with --cluster: the node the sniffer stood at


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
        if version > fmt.VERSION:
            raise CaptureError(f"{self.path}:1: capture format version {version} was written by "
                               f"a newer sio-sniffer ({head.get('sniffer')}); this one reads up "
                               f"to version {fmt.VERSION}")
        for v in range(version, fmt.VERSION):
            if v not in self.migrations:
                raise CaptureError(f"{self.path}:1: no migration from capture version {v}")
        head = self._migrate(head, version)
        self.header = CaptureHeader(
            path=str(self.path), version=version, sniffer=str(head.get("sniffer", "")),
            upstream=str(head.get("upstream", "")), started=str(head.get("started", "")),
            capture_id=str(head.get("capture_id", self.path)),
            segment=int(head.get("segment", 0) or 0),
            show_secrets=bool(head.get("show_secrets", False)),
            cluster_node=_node(head.get("cluster_node")),
        )
        return version

    def _migrate(self, obj: dict[str, Any], version: int) -> dict[str, Any]:
        for v in range(version, fmt.VERSION):
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


def _first_line(path: str | os.PathLike[str]) -> Any:
    with open(path, "rb") as fh:
        first = fh.readline(DEFAULT_MAX_LINE)
    try:
        return orjson.loads(first)
    except orjson.JSONDecodeError:
        return None


def _node(value: Any) -> str | None:
    return value[:200] if isinstance(value, str) and value else None


def capture_id_of(path: str | os.PathLike[str]) -> str:
    """The capture_id in a file's header (the path itself when the header has none)."""
    head = _first_line(path)
    if isinstance(head, dict) and isinstance(head.get("capture_id"), str):
        return str(head["capture_id"])
    return str(path)


def cluster_node_of(path: str | os.PathLike[str]) -> str | None:
    """The node a capture made with --cluster names in its header (None otherwise)."""
    head = _first_line(path)
    return _node(head.get("cluster_node")) if isinstance(head, dict) else None


def parse_iso(ts: str) -> float:
    """Seconds since the epoch from an ISO-8601 time (``Z`` or offset; naive means UTC)."""
    dt = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()
