"""The one secrets policy: which names hold secrets, and the fingerprint that stands in for them.

Logs, captures, the live page and the Admin UI bridge all ask here, so a name that is secret in
one view is secret in every view.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import orjson

from sio_sniffer.model.records import json_default

# Header, query, cookie and form names whose values are secrets (``?token=...`` in a connection
# URL, ``X-Api-Key``, ``Authorization``, ``Cookie``): judged by pattern, because every API names
# its credentials differently. The exact names Authorization, Proxy-Authorization, Cookie and
# Set-Cookie are all caught by ``auth`` and ``cookie``; ``sessid`` is for PHP's ``PHPSESSID``,
# which ``session`` misses. Engine.IO's own parameters (``EIO``, ``transport``, ``t``, ``sid``,
# ``b64``, ``j``) match none of these, and must not: the sniffer finds sessions by them.
SECRET_NAME = re.compile(
    r"auth|token|key|secret|sig|session|sessid|passw|credential|cookie|csrf|xsrf|bearer|jwt",
    re.I)

# Header names the patterns catch that are no credential and are needed in clear.
# Sec-WebSocket-Key is a random nonce of the WebSocket handshake (RFC 6455, 4.1): it proves
# nothing about the client, and its pairing with Sec-WebSocket-Accept is what a reader checks
# when an upgrade fails. ``:authority`` is the HTTP/2 form of Host (HAR files carry it).
_CLEAR_HEADERS = frozenset({"sec-websocket-key", ":authority"})

_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{8}$")

_V = TypeVar("_V")


def is_secret_name(name: str) -> bool:
    """Whether a query, cookie or form field ``name`` holds a secret (case-insensitive)."""
    return SECRET_NAME.search(name) is not None


def is_secret_header(name: str) -> bool:
    """Whether the value of the HTTP header ``name`` is a secret (case-insensitive)."""
    return name.lower() not in _CLEAR_HEADERS and SECRET_NAME.search(name) is not None


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


def is_fingerprint(value: Any) -> bool:
    """Whether ``value`` already is a fingerprint (so redacting twice changes nothing)."""
    return isinstance(value, str) and _FINGERPRINT.match(value) is not None


def fingerprint_once(value: Any) -> Any:
    """``value``'s fingerprint, or ``value`` itself when it already is one."""
    return value if is_fingerprint(value) else fingerprint(value)


def redact_params(params: Mapping[str, _V]) -> dict[str, _V | str]:
    """Query (or cookie, or form) parameters with the values of secret names fingerprinted."""
    return {k: fingerprint_once(v) if is_secret_name(k) else v for k, v in params.items()}


def redact_url(url: str) -> str:
    """A URL or request target with the values of secret-named query parameters fingerprinted;
    returned unchanged (byte for byte) when it has none."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(is_secret_name(k) for k, _ in pairs):
        return url
    query = "&".join(
        f"{quote(k, safe='')}={quote(fingerprint_once(v) if is_secret_name(k) else v, safe='')}"
        for k, v in pairs)
    return urlunsplit(parts._replace(query=query))
