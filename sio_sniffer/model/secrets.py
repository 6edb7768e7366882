"""The one secrets policy: which names hold secrets, and the fingerprint that stands in for them."""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from sio_sniffer.model.records import json_default

# Query parameters and similar names whose values are secrets (``?token=...`` in a connection
# URL): logs, captures and views show their values only as fingerprints.
SECRET_NAME = re.compile(r"token|auth|key|secret|passw|session|cookie|credential|jwt", re.I)


def fingerprint(value: Any) -> str:
    """A short, stable stand-in for a secret (``sha256:`` + 8 hex chars): equal secrets give
    equal fingerprints, so a user can tell that a client's and a server's tokens differ without
    either token ever being written down. Bytes and text are hashed as they are, anything else
    as canonical JSON."""
    if isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode()
    else:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=json_default)
    return "sha256:" + hashlib.sha256(data).hexdigest()[:8]
