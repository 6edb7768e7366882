"""The one secrets policy: which names hold secrets, and the fingerprint that stands in for them.

Logs, captures, the live page and the Admin UI bridge all ask here, so a name that is secret in
one view is secret in every view.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

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

# A JSON Web Token (RFC 7519, compact form): base64url header, payload and signature; the header
# always opens with ``{"`` (``eyJ``). Recognised by shape wherever it stands in a URL or header,
# since a token in a path segment (``/ws/eyJ...``) or under an innocent name has no name to judge.
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*")
# ``scheme://user:password@host``: the password is a credential whatever the query says.
_USERINFO = re.compile(r"(?<=://)[^/?#@\s\"']+:[^/?#@\s\"']*(?=@)")

# Header names the patterns catch that are no credential and are needed in clear.
# Sec-WebSocket-Key is a random nonce of the WebSocket handshake (RFC 6455, 4.1): it proves
# nothing about the client, and its pairing with Sec-WebSocket-Accept is what a reader checks
# when an upgrade fails. ``:authority`` is the HTTP/2 form of Host (HAR files carry it).
_CLEAR_HEADERS = frozenset({"sec-websocket-key", ":authority"})

_FINGERPRINT = re.compile(r"^sha256:[0-9a-f]{8}$")

_V = TypeVar("_V")


def add_secret_names(patterns: Iterable[str]) -> None:
    """Also treat names matching these regular expressions (case-insensitive) as secrets, in this
    process, in every output (``--secret-name``). ValueError, in one sentence, for a bad one."""
    extra = []
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"--secret-name {pattern!r} is not a regular expression ({exc}); "
                             "give a name or a pattern such as 'x-tenant' or '^sid2$'") from exc
        extra.append(f"(?:{pattern})")
    if extra:
        global SECRET_NAME
        SECRET_NAME = re.compile("|".join([SECRET_NAME.pattern, *extra]), re.I)


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


def redact_auth(auth: Any) -> Any:
    """A Socket.IO CONNECT auth as every output shows it: an object keeps its keys (which keys a
    client sent is what a reader needs) and each value becomes its fingerprint, so a token has
    the same fingerprint in the log, the capture's bytes and the Admin UI; any other auth is one
    fingerprint; no auth, or an empty object (python-socketio sends ``{}``), is None: nothing
    was sent, and a fingerprint would read as if a token had been."""
    if auth is None or auth == {}:
        return None
    if isinstance(auth, dict):
        return {str(k): fingerprint_once(v) for k, v in auth.items()}
    return fingerprint_once(auth)


def redact_params(params: Mapping[str, _V]) -> dict[str, _V | str]:
    """Query (or cookie, or form) parameters with the values of secret names fingerprinted, and
    JWTs fingerprinted under any name."""
    return {k: fingerprint_once(v) if is_secret_name(k) else redact_value(v)
            for k, v in params.items()}


def redact_value(value: _V) -> _V | str:
    """``value`` with every JWT in it fingerprinted (a value that is no text is kept)."""
    if not isinstance(value, str) or "eyJ" not in value:
        return value
    return JWT.sub(lambda m: fingerprint(m.group()), value)


def redact_url(url: str) -> str:
    """A URL or request target with the values of secret-named query parameters, any JWT (in
    the path too) and a ``user:password@`` fingerprinted; returned unchanged (byte for byte)
    when it has none."""
    if "://" in url and "@" in url:
        url = _USERINFO.sub(lambda m: fingerprint_once(m.group()), url)
    url = redact_value(url)
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if not any(is_secret_name(k) for k, _ in pairs):
        return url
    query = "&".join(
        f"{quote(k, safe='')}={quote(fingerprint_once(v) if is_secret_name(k) else v, safe=':')}"
        for k, v in pairs)
    return urlunsplit(parts._replace(query=query))


# Headers whose values are URLs: a page opened with ``?token=`` sends it again in Referer.
_URL_HEADERS = frozenset({"referer", "location", "content-location", "origin"})


def redact_header(name: str, value: str) -> str:
    """The value of header ``name`` as every output shows it: a fingerprint for a secret header,
    else with the URL secrets and JWTs in it fingerprinted."""
    if is_secret_header(name):
        return value if is_fingerprint(value) else fingerprint(value)
    if name.lower() in _URL_HEADERS:
        return redact_url(value)
    return redact_value(value)


# What a leftover secret looks like in text (a capture line, a payload): a JSON member or a
# ``name=value`` parameter whose name is secret and whose value is no fingerprint, a JWT, or a
# ``user:password@``. Used to check a redacted copy before it is shared.
_JSON_MEMBER = re.compile(r'"([^"\\]{1,80})"\s*:\s*"([^"\\]+)"')
_PARAM = re.compile(r"[?&;]([\w.\-\[\]%]{1,80})=([^&;\s\"'#<>(){}]+)")


def find_secrets(text: str) -> list[str]:
    """What in ``text`` looks like a secret in clear, by name (``'password'``, ``a JWT``), never
    by value; an empty list when nothing does."""
    found: list[str] = []
    for name, value in (*_JSON_MEMBER.findall(text), *_PARAM.findall(text)):
        if is_secret_name(name) and not is_fingerprint(unquote(value)) \
                and name.lower() not in _CLEAR_HEADERS:
            found.append(repr(name))
    if JWT.search(text):
        found.append("a JWT")
    if "://" in text and any(not is_fingerprint(m.group()) for m in _USERINFO.finditer(text)):
        found.append("a user:password@ in a URL")
    return list(dict.fromkeys(found))
