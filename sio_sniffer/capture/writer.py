"""Writing a capture: one unbuffered ``write`` per line, size rotation, and no exception ever.

Every line is written with one ``write`` so a SIGKILL leaves a file that reads to its last
complete line (the format itself is in :mod:`sio_sniffer.capture.format`).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import structlog

from sio_sniffer import __version__
from sio_sniffer.capture.format import FORMAT, VERSION, event_to_dict, record_to_dict
from sio_sniffer.model import Record, iso_ts, json_default
from sio_sniffer.model.cluster import CLUSTER_FACTS
from sio_sniffer.model.tap import TapEvent
from sio_sniffer.support.files import OWNER_ONLY, numbered

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
        cluster_node: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.cluster_node = cluster_node
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
        return numbered(self.path, n)

    def header(self) -> dict[str, Any]:
        """The first line of every segment."""
        return {
            "format": FORMAT, "version": VERSION, "sniffer": __version__,
            "upstream": self.upstream, "started": iso_ts(time.time()),
            "capture_id": self.capture_id, "segment": self.segment,
            "show_secrets": self.show_secrets,
            **({"cluster_node": self.cluster_node} if self.cluster_node else {}),
        }

    def _open_segment(self) -> None:
        path = self.segment_path(self.segment)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY)
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

    def fact(self, record: Record) -> None:
        """Store one fact of the cluster view (a record line of a ``cluster.*`` kind): kept
        even without records, since the traffic alone cannot judge a cluster again."""
        if record.event in CLUSTER_FACTS:
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
