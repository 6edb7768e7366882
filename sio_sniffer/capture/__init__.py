"""Capture files: every tap event (and optionally every record) as one JSON line.

The line format and its migrations are in :mod:`~sio_sniffer.capture.format`, the writer in
:mod:`~sio_sniffer.capture.writer`, the reader (and merging) in
:mod:`~sio_sniffer.capture.reader`, the Socket.IO CONNECT auth found in raw bytes in
:mod:`~sio_sniffer.capture.auth`. Their public names are all importable from here.
"""

from sio_sniffer.capture.auth import connect_auths, redact_connect_auth
from sio_sniffer.capture.format import (
    DEFAULT_MAX_LINE,
    FORMAT,
    MIGRATIONS,
    VERSION,
    CaptureItem,
    LineError,
    Migration,
    event_from_dict,
    event_to_dict,
    record_from_dict,
    record_to_dict,
)
from sio_sniffer.capture.reader import (
    CaptureError,
    CaptureHeader,
    CaptureProblem,
    CaptureReader,
    capture_id_of,
    cluster_node_of,
    item_ts,
    merge,
    parse_iso,
)
from sio_sniffer.capture.writer import CaptureWriter, OnProblem
from sio_sniffer.model import Record, fingerprint

__all__ = [
    "DEFAULT_MAX_LINE",
    "FORMAT",
    "MIGRATIONS",
    "VERSION",
    "CaptureError",
    "CaptureHeader",
    "CaptureItem",
    "CaptureProblem",
    "CaptureReader",
    "CaptureWriter",
    "LineError",
    "Migration",
    "OnProblem",
    "Record",
    "capture_id_of",
    "cluster_node_of",
    "connect_auths",
    "event_from_dict",
    "event_to_dict",
    "fingerprint",
    "item_ts",
    "merge",
    "parse_iso",
    "record_from_dict",
    "record_to_dict",
    "redact_connect_auth",
]
