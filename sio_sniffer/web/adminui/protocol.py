"""The Admin UI's side of the bridge: its namespace and features, the tables the bridge keeps,
and the shapes of the messages it sends (``ServerEvents`` of ``typed-events.ts``)."""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sio_sniffer import model
from sio_sniffer.model import Record, fingerprint, redact_header, redact_params, redact_url

NAMESPACE = "/admin"
# The features the Admin UI knows (typed-events.ts): the write ones (EMIT, JOIN, LEAVE,
# DISCONNECT, MJOIN, MLEAVE, MDISCONNECT) are never advertised.
FEATURES = ["AGGREGATED_EVENTS", "ALL_EVENTS"]
WRITE_ACTIONS = ("emit", "join", "leave", "_disconnect")


@functools.lru_cache(maxsize=4)
def iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def iso(ts: float) -> str:
    """A JavaScript ``Date`` as JSON: UTC ISO-8601 with milliseconds (the formatted second is
    cached: events come many per second)."""
    return f"{iso_second(int(ts))}.{int(ts * 1000) % 1000:03d}Z"


def peer_host(peer: str | None) -> str | None:
    """``127.0.0.1:5000`` or ``[::1]:5000`` -> the address part."""
    if not peer:
        return None
    if peer.startswith("["):
        return peer[1:].partition("]")[0]
    host, sep, port = peer.rpartition(":")
    return host if sep and port.isdigit() and ":" not in host else peer


def plain(value: Any) -> Any:
    """What JSON (and the browser's ``JSON.parse``) can carry; bytes stay binary attachments."""
    if value is None or isinstance(value, (str, bool, int, bytes)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bytearray):
        return bytes(value)
    return repr(value)


def bytes_only(value: Any) -> Any:
    if isinstance(value, bytes):
        return None
    raise TypeError(type(value).__name__)


def safe_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` unchanged when python-socketio's JSON and the browser both accept them."""
    try:
        json.dumps(args, allow_nan=False, default=bytes_only)
    except (TypeError, ValueError):
        return tuple(plain(a) for a in args)
    return args


@dataclass(slots=True)
class Conn:
    """A TCP connection to the proxy, as the tap saw it: TLS or not, and its handshake request."""

    tls: bool
    target: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Client:
    """One Engine.IO session (the Admin UI's "client")."""

    eio_sid: str
    opened: float
    transport: str
    peer: str | None
    user_agent: str | None
    limit: float  # seconds without any record after which the session is taken as gone
    last_seen: float
    secure: bool = False
    target: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sockets: dict[str, str] = field(default_factory=dict)  # nsp -> Socket.IO sid
    auth: dict[str, dict[str, Any]] = field(default_factory=dict)  # nsp -> fingerprinted auth


@dataclass(slots=True)
class Socket:
    id: str
    nsp: str
    client: Client
    connected: float
    auth: dict[str, Any]
    rooms: list[str] = field(default_factory=list)


def serialize_socket(sock: Socket) -> dict[str, Any]:
    """A socket as the Admin UI's ``Socket`` type, secrets of its handshake fingerprinted."""
    client = sock.client
    target = client.target or ""
    query = redact_params({k: v[0] for k, v in parse_qs(urlsplit(target).query,
                                                        keep_blank_values=True).items()})
    forwarded = client.headers.get("cf-connecting-ip") or client.headers.get("x-forwarded-for")
    return {
        "id": sock.id,
        "clientId": client.eio_sid,
        "transport": client.transport,
        "nsp": sock.nsp,
        "data": {},
        "handshake": {
            "address": forwarded or peer_host(client.peer),
            "headers": client.headers,
            "query": query,
            "issued": int(client.opened * 1000),
            "time": formatdate(client.opened, usegmt=True),
            "secure": client.secure,
            "url": redact_url(target) or None,
            "xdomain": "origin" in client.headers,
            "auth": sock.auth,
        },
        "rooms": list(sock.rooms),
    }


def handshake_headers(raw: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Headers as Node's ``IncomingHttpHeaders``: lower-case names, repeats joined with ``, ``,
    secret values fingerprinted."""
    out: dict[str, str] = {}
    for name, value in raw:
        key = name.lower()
        value = redact_header(key, value)
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def room_name(nsp: str, members: frozenset[str], names: Any) -> str:
    """Stable for a member set: the first event name it was seen with, and a short hash."""
    digest = fingerprint(nsp + "\0" + "\0".join(sorted(members)))[len("sha256:"):][:6]
    first = names[0] if isinstance(names, list) and names else "room"
    return f"~{first}#{digest}"


def text_size(rec: Record) -> int:
    """Bytes of the text packet when the wire size is not known (packets inside a polling
    payload): type digit, namespace, ack id and the JSON array, as Socket.IO writes them."""
    nsp = rec.nsp or "/"
    head = 1 + (len(nsp) + 1 if nsp != "/" else 0) + (len(str(rec.ack_id))
                                                       if rec.ack_id is not None else 0)
    data = ([rec.name, *(rec.args if isinstance(rec.args, list) else [rec.args])]
            if rec.event == model.SIO_EVENT else rec.args)
    try:
        return head + len(json.dumps(data, separators=(",", ":"), ensure_ascii=False,
                                     default=bytes_only).encode())
    except (TypeError, ValueError):
        return head

