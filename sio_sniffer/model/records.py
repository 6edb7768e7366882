"""Records: what the sniffer says happened, one immutable object per observation.

Every sink (JSON log, capture file, live UI) and every analysis consumer reads these. The JSON
form is flat: the common fields below, then the kind-specific ``extra`` fields at the same level.
``FORMAT_VERSION`` names the schema; it goes into capture headers so readers can migrate.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

FORMAT_VERSION = 1

# Record kinds (the ``event`` field of a log line). Listed once so producers and consumers agree.
HTTP = "http"  # an HTTP exchange finished: method, path, status, bytes, duration
HTTP_ABANDONED = "http.abandoned"  # the client hung up on a request before its answer
HTTP_REQUEST = "http.request"  # a non-Engine.IO request arrived (hook POSTs open expectations)
HTTP_PAGE = "http.page"  # the log's one line for a browser's page load and its asset fetches
CONN_OPEN = "conn.open"
CONN_CLOSE = "conn.close"
UPSTREAM_ERROR = "upstream_error"
EIO_OPEN = "eio.open"
EIO_UPGRADE = "eio.upgrade"
EIO_CLOSE = "eio.close"
EIO_PING = "eio.ping"
EIO_PONG = "eio.pong"
EIO_HEARTBEATS = "eio.heartbeats"  # summary of pings/pongs when they are not logged one by one
EIO_MESSAGE = "eio.message"  # an Engine.IO message that is not Socket.IO (plain engine.io apps)
WS_OPEN = "ws.open"
WS_CLOSE = "ws.close"
SIO_CONNECT = "sio.connect"
SIO_CONNECT_OK = "sio.connect_ok"
SIO_CONNECT_ERROR = "sio.connect_error"
SIO_DISCONNECT = "sio.disconnect"
SIO_EVENT = "sio.event"
SIO_ACK = "sio.ack"
DECODE_ERROR = "decode_error"
BROADCAST = "broadcast"
FLAG = "flag"
ROOMS = "rooms"
SUMMARY = "summary"


@dataclass(slots=True)
class Record:
    """One observation. ``args`` is the full decoded payload: sinks truncate, analysis reads all.

    Never changed once made (sinks share it; :func:`dataclasses.replace` makes altered copies).
    Not ``frozen``: a frozen dataclass sets each field through ``object.__setattr__``, which made
    creating a record 2.5x slower, and every packet creates one.
    """

    event: str
    ts: float  # wall clock, seconds since the epoch (UTC)
    conn: str | None = None
    eio_sid: str | None = None
    transport: str | None = None
    dir: str | None = None
    nsp: str | None = None
    sio_sid: str | None = None
    name: str | None = None
    ack_id: int | None = None
    args: Any = None
    size: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        """A kind-specific field (from ``extra``), or ``default``."""
        return self.extra.get(key, default)

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON-ready form (``ts`` as UTC ISO-8601), fields that are unknown left out."""
        # Written out field by field: every logged record passes here, and a loop of getattr
        # calls over the field names cost twice as much.
        out: dict[str, Any] = {"ts": iso_ts(self.ts), "event": self.event}
        if self.conn is not None:
            out["conn"] = self.conn
        if self.eio_sid is not None:
            out["eio_sid"] = self.eio_sid
        if self.transport is not None:
            out["transport"] = self.transport
        if self.dir is not None:
            out["dir"] = self.dir
        if self.nsp is not None:
            out["nsp"] = self.nsp
        if self.sio_sid is not None:
            out["sio_sid"] = self.sio_sid
        if self.name is not None:
            out["name"] = self.name
        if self.ack_id is not None:
            out["ack_id"] = self.ack_id
        if self.args is not None:
            out["args"] = self.args
        if self.size is not None:
            out["size"] = self.size
        if self.extra:
            out.update(self.extra)
        return out


_second: list[Any] = [None, ""]  # the last whole second formatted, and its text


def iso_ts(ts: float) -> str:
    """UTC ISO-8601 with microseconds and a ``Z``: sortable as text, readable by people.

    Every log line has one, mostly within the same second as the previous line: the seconds
    part is formatted once per second (strftime was a measurable share of logging)."""
    whole = int(ts)
    micros = round((ts - whole) * 1_000_000)
    if micros == 1_000_000:
        whole, micros = whole + 1, 0
    if _second[0] != whole:
        _second[0] = whole
        _second[1] = datetime.fromtimestamp(whole, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{_second[1]}.{micros:06d}Z"


def json_default(value: Any) -> Any:
    """orjson's ``default`` for stored data: bytes as ``{"$bytes": base64}`` (lossless, so a
    capture keeps them and fingerprints of equal values agree), sets and tuples as lists."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)
