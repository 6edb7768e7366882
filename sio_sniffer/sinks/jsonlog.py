"""The JSON log: one line per Record, through structlog, buffered so logging never holds traffic.

structlog gives the processor chain (filtering, truncation, rendering); the line writer under it
batches writes and flushes on the sniffer's tick, because a syscall per record would cost more
than decoding does. A failing disk is reported once and then ignored: the traffic matters more
than the log of it.
"""

from __future__ import annotations

import base64
import fnmatch
import sys
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import IO, Any

import orjson
import structlog

from sio_sniffer import model
from sio_sniffer.model import Record
from sio_sniffer.sinks.pages import PageFolder
from sio_sniffer.sinks.pretty import PrettyRenderer, colour_wanted

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


class LineWriter:
    """A structlog "logger": takes rendered lines, buffers them, never raises.

    ``on_problem`` hears about the first write failure (disk full, file gone); later lines are
    dropped until a write succeeds again, so a broken disk costs one message, not one per record.
    """

    def __init__(self, stream: IO[bytes], on_problem: Callable[[str], None] | None = None,
                 flush_each: bool = False) -> None:
        self._stream = stream
        self._buf: list[bytes] = []
        self._size = 0
        self._on_problem = on_problem
        self._failed = False
        self._flush_each = flush_each

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
        self._buf.clear()
        self._size = 0
        try:
            self._stream.write(data)
            self._stream.flush()
            self._failed = False
        except (OSError, ValueError) as exc:
            if not self._failed and self._on_problem is not None:
                self._on_problem(f"cannot write the log: {exc}; traffic keeps flowing, "
                                 "log lines are dropped until the disk recovers")
            self._failed = True


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

    def __init__(self, stream: IO[bytes], *, pretty: bool = False, max_payload: int = 2048,
                 log_filter: LogFilter | None = None, flush_each: bool = False,
                 on_problem: Callable[[str], None] | None = None) -> None:
        self._filter = log_filter or LogFilter()
        self._writer = LineWriter(stream, on_problem, flush_each=flush_each)
        renderer: Any = PrettyRenderer(colour_wanted(stream)) if pretty else _Render()
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

    def close(self, ts: float) -> None:
        if self._pages is not None:
            self._write_pages(None)
        self._summarise(ts)
        self._writer.flush()


def stdout_binary() -> IO[bytes]:
    return sys.stdout.buffer
