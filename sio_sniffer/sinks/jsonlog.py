"""The JSON log: one line per Record, through structlog, buffered so logging never holds traffic.

structlog gives the processor chain (filtering, truncation, rendering); the line writer under it
batches writes and flushes on the sniffer's tick, because a syscall per record would cost more
than decoding does. A failing disk is reported once, the lines it costs are counted, and writing
resumes (saying how many were dropped) when it works again: the traffic matters more than the
log of it. ``--log FILE`` is a :class:`LogFile`: reopened on SIGHUP, rotated by size.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fnmatch
import os
import sys
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
import structlog

from sio_sniffer import model
from sio_sniffer.model import Record
from sio_sniffer.sinks.pages import PageFolder
from sio_sniffer.sinks.pretty import PrettyRenderer, colour_wanted
from sio_sniffer.support.files import numbered, open_private

_FLUSH_AT = 64 * 1024


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return {"_binary": len(raw), "base64": base64.b64encode(raw[:1024]).decode()}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def dumps(value: Any) -> bytes:
    """JSON bytes for any decoded payload: bytes become {_binary, base64}, the rest repr."""
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


class LogWriteError(OSError):
    """A write of a batch that failed after ``lines_written`` whole lines of it were written."""

    def __init__(self, exc: OSError, lines_written: int) -> None:
        super().__init__(exc.errno, exc.strerror or str(exc))
        self.lines_written = lines_written


class LogFile:
    """``--log FILE``: created 0600 and appended to, with raw writes of whole batches of lines;
    :meth:`reopen` (SIGHUP) opens the path anew, and with ``rotate_bytes`` a new numbered part
    (``FILE.1``, ``FILE.2``, ... as captures are numbered) starts before a line that would take
    the current one past that size, so no line is ever split across two files.

    ``write`` raises :class:`OSError` (the :class:`LineWriter` above it counts and reports);
    after a write that stopped within a line, the next one starts on a new line, so the broken
    line stays a line of its own.
    """

    def __init__(self, path: str | os.PathLike[str], rotate_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.rotate_bytes = rotate_bytes
        self.segment = 0
        self.paths: list[Path] = []
        self._file: IO[bytes] | None = None
        self._size = 0
        self._mid_line = False
        self._open()  # OSError: the command says it cannot open the log

    @property
    def current(self) -> Path:
        return numbered(self.path, self.segment)

    def _open(self) -> None:
        path = self.current
        self._file = open_private(path, append=True, buffering=0)
        self._size = os.fstat(self._file.fileno()).st_size
        self._mid_line = False
        if path not in self.paths:
            self.paths.append(path)

    def reopen(self) -> None:
        """Close the file and open its path again (logrotate moved the old one away)."""
        self.close()
        self._open()

    def write(self, data: bytes) -> int:
        if self._file is None:
            self._open()
        done = 0
        try:
            if self.rotate_bytes is None:
                self._write_all(data)
                return len(data)
            batch: list[bytes] = []
            size = 0
            # b"\n" only: bytes.splitlines would cut at a carriage return too
            for line in _lines(data):
                if self._size + size > 0 and self._size + size + len(line) > self.rotate_bytes:
                    self._write_all(b"".join(batch))
                    done += len(batch)
                    batch, size = [], 0
                    self.close()
                    self.segment += 1
                    self._open()
                batch.append(line)
                size += len(line)
            self._write_all(b"".join(batch))
        except LogWriteError as exc:
            raise LogWriteError(exc, done + exc.lines_written) from exc
        except OSError as exc:
            raise LogWriteError(exc, done) from exc
        return len(data)

    def _write_all(self, data: bytes) -> None:
        assert self._file is not None
        if self._mid_line:
            data = b"\n" + data
        view = memoryview(data)
        try:
            while view:
                n = self._file.write(view) or 0
                self._size += n
                if n:
                    self._mid_line = view[n - 1] != 0x0A
                view = view[n:]
        except OSError as exc:
            raise LogWriteError(exc, bytes(data[: len(data) - len(view)]).count(b"\n")) from exc

    def flush(self) -> None:
        """Nothing is buffered here (the LineWriter batches)."""

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError):
                file.close()


def _lines(data: bytes) -> list[bytes]:
    lines = [line + b"\n" for line in data.split(b"\n")]
    last = lines.pop()
    if last != b"\n":
        lines.append(last[:-1])  # an unterminated tail stays as it was
    return lines


def _fix(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space on its disk or point --log at another one"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "make it writable or point --log elsewhere"
    return "check its disk or point --log elsewhere"


class LineWriter:
    """A structlog "logger": takes rendered lines, buffers them, never raises.

    ``on_problem`` hears about the first write failure (disk full, file gone) in one sentence
    with the fix; later batches are dropped (and counted) until a write succeeds again, which
    it hears about too, with the count: a broken disk costs two messages, not one per record.
    """

    def __init__(self, stream: IO[bytes] | LogFile, on_problem: Callable[[str], None] | None = None,
                 flush_each: bool = False) -> None:
        self._stream = stream
        self._buf: list[bytes] = []
        self._size = 0
        self._on_problem = on_problem
        self._failed = False
        self._flush_each = flush_each
        self.dropped = 0  # lines lost since the last failure began
        self.dropped_total = 0

    def msg(self, line: bytes | str) -> None:
        data = line.encode() if isinstance(line, str) else line
        self._buf.append(data)
        self._buf.append(b"\n")
        self._size += len(data) + 1
        if self._flush_each or self._size >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if not self._buf:
            return
        data = b"".join(self._buf)
        lines = len(self._buf) // 2
        self._buf.clear()
        self._size = 0
        try:
            self._stream.write(data)
            self._stream.flush()
        except (OSError, ValueError) as exc:
            self._failure(exc, lines - getattr(exc, "lines_written", 0))
            return
        if self._failed:
            self._failed = False
            self._tell(f"writing {self._where()} again; {self.dropped} line(s) were dropped while "
                       "it could not be written")
            self.dropped = 0

    def reopen(self) -> None:
        """SIGHUP: what is buffered goes to the old file, what follows to the path opened anew."""
        self.flush()
        reopen = getattr(self._stream, "reopen", None)
        if reopen is None:
            return
        try:
            reopen()
        except OSError as exc:
            self._failure(exc, 0)

    def _failure(self, exc: Exception, dropped: int) -> None:
        self.dropped += dropped
        self.dropped_total += dropped
        if self._failed:
            return
        self._failed = True
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        fix = _fix(exc) if isinstance(exc, OSError) else "point --log elsewhere"
        self._tell(f"cannot write {self._where()}: {reason}; traffic keeps flowing and log lines "
                   f"are dropped until writing works again: {fix}")

    def _where(self) -> str:
        return f"the log {self._stream.current}" if isinstance(self._stream, LogFile) \
            else "the log"

    def _tell(self, message: str) -> None:
        if self._on_problem is not None:
            with contextlib.suppress(Exception):  # reporting must not raise either
                self._on_problem(message)


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which records reach the log (analysis always sees everything)."""

    nsp: tuple[str, ...] = ()
    name: tuple[str, ...] = ()  # glob patterns
    dir: str | None = None
    quiet_heartbeats: bool = False
    verbose: bool = False

    def keeps(self, record: Record) -> bool:
        if self.nsp and record.nsp is not None and record.nsp not in self.nsp:
            return False
        if self.name and record.name is not None and \
                not any(fnmatch.fnmatchcase(record.name, pat) for pat in self.name):
            return False
        return not (self.dir and record.dir is not None and record.dir != self.dir)


class _Truncate:
    """Render ``args`` once, and cut it to the configured size (keeping the full size)."""

    def __init__(self, max_payload: int) -> None:
        self._max = max_payload

    def __call__(self, _logger: Any, _name: str,
                 event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if "args" in event:
            text = dumps(event["args"])
            event.setdefault("size", len(text))
            if len(text) > self._max:
                event["args"] = text[: self._max].decode("utf-8", "ignore")
                event["args_truncated"] = True
            else:
                event["args"] = orjson.Fragment(text)
        return event


class _Render:
    def __call__(self, _logger: Any, _name: str, event: MutableMapping[str, Any]) -> bytes:
        return dumps(event)


_HEARTBEAT_KINDS = (model.EIO_PING, model.EIO_PONG)
# Heartbeats are summarised per interval of record time, not logged one line each (a 300 ms
# ping interval would otherwise fill the log with pings).
HEARTBEAT_SUMMARY_EVERY = 60.0


class JsonLogSink:
    """A Record sink that writes the JSON log (or the ``--pretty`` rendering of the same dicts)."""

    def __init__(self, stream: IO[bytes] | LogFile, *, pretty: bool = False,
                 max_payload: int = 2048, log_filter: LogFilter | None = None,
                 flush_each: bool = False,
                 on_problem: Callable[[str], None] | None = None) -> None:
        self._filter = log_filter or LogFilter()
        self._writer = LineWriter(stream, on_problem, flush_each=flush_each)
        renderer: Any = PrettyRenderer(
            not isinstance(stream, LogFile) and colour_wanted(stream)) if pretty else _Render()
        # Bound once: the lazy proxy that wrap_logger returns would bind anew on every line.
        self._log = structlog.wrap_logger(
            self._writer, processors=[_Truncate(max_payload), renderer],
            wrapper_class=structlog.BoundLogger, context_class=dict).bind()
        self._pings = 0
        self._pongs = 0
        self._summary_due: float | None = None
        self._pages = None if self._filter.verbose else PageFolder()

    def __call__(self, record: Record) -> None:
        kind = record.event
        if self._pages is not None:
            # Page loads over by this record's time are written before it; the summary is last.
            self._write_pages(None if kind == model.SUMMARY else record.ts)
            if self._filter.keeps(record) and self._pages.take(record):
                return
        if kind in _HEARTBEAT_KINDS and not record.get("probe") and not self._filter.verbose:
            self._count_heartbeat(record)
            return
        if not self._filter.keeps(record):
            return
        if kind == model.SUMMARY:
            self._summarise(record.ts)  # the heartbeat count goes before it: the summary is last
        self.write(record.to_dict())

    def write(self, line: dict[str, Any]) -> None:
        """Log one already-built line (used for the sniffer's own notices too)."""
        event = line.pop("event")
        self._log.msg(event, **line)

    def _count_heartbeat(self, record: Record) -> None:
        if record.event == model.EIO_PING:
            self._pings += 1
        else:
            self._pongs += 1
        if self._summary_due is None:
            self._summary_due = record.ts + HEARTBEAT_SUMMARY_EVERY
        elif record.ts >= self._summary_due:
            self._summarise(record.ts)

    def _summarise(self, ts: float) -> None:
        if (self._pings or self._pongs) and not self._filter.quiet_heartbeats:
            self.write({"event": model.EIO_HEARTBEATS, "ts": model.iso_ts(ts),
                        "pings": self._pings, "pongs": self._pongs})
        self._pings = self._pongs = 0
        self._summary_due = ts + HEARTBEAT_SUMMARY_EVERY

    def _write_pages(self, now: float | None) -> None:
        assert self._pages is not None
        for line in self._pages.due(now):
            self.write(line)

    def flush(self) -> None:
        """Write what is buffered; called on the live sniffer's tick, so a page load that went
        quiet is written by the wall clock even when no record follows it."""
        if self._pages is not None:
            self._write_pages(time.time())
        self._writer.flush()

    def reopen(self) -> None:
        """SIGHUP: reopen ``--log FILE`` at its path (what was buffered goes to the old one)."""
        self._writer.reopen()

    @property
    def dropped(self) -> int:
        """Log lines lost to failed writes, over the whole run."""
        return self._writer.dropped_total

    def close(self, ts: float) -> None:
        if self._pages is not None:
            self._write_pages(None)
        self._summarise(ts)
        self._writer.flush()


def stdout_binary() -> IO[bytes]:
    return sys.stdout.buffer
