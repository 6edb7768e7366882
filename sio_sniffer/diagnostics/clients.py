"""Client-side helpers shared by the diagnostic commands (python-socketio and aiohttp peers)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import socketio

from sio_sniffer.model import stats

HOOK_DEBUG_ENV = "CLAUDE_MPM_HOOK_DEBUG"


def hook_debug() -> bool:
    """``CLAUDE_MPM_HOOK_DEBUG=true`` (as claude-mpm's hook reads it) turns packet logging on."""
    return os.environ.get(HOOK_DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def new_client(*, reconnection: bool = False, debug: bool = False,
               **kwargs: object) -> socketio.AsyncClient:
    """A python-socketio client; with ``debug`` its and Engine.IO's loggers show every packet."""
    if debug:
        return socketio.AsyncClient(reconnection=reconnection,
                                    logger=_debug_logger("socketio.client"),
                                    engineio_logger=_debug_logger("engineio.client"), **kwargs)
    return socketio.AsyncClient(reconnection=reconnection, **kwargs)


def _debug_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(f"sio_sniffer.debug.{name}")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"[{name}] %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


async def close_client(client: socketio.AsyncClient) -> None:
    """Disconnect without waiting out a pending long-poll.

    python-engineio's ``disconnect()`` waits for the outstanding polling GET, which the server
    answers only after pingInterval + pingTimeout (90 s with claude-mpm's settings). Sending
    the Engine.IO CLOSE and dropping the HTTP session ends the session on the server just the
    same, at once.
    """
    if client.connected and client.transport() == "websocket":
        await client.disconnect()
    elif client.eio.state == "connected":
        await client.eio.disconnect(abort=True)
    else:
        await client.shutdown()
    if client.eio.http is not None and not client.eio.http.closed:
        await client.eio.http.close()


@dataclass(frozen=True, slots=True)
class ConnectOutcome:
    """How a Socket.IO CONNECT to one namespace ended.

    ``status``: ``accepted``; ``refused`` (CONNECT_ERROR, ``message`` is the server's);
    ``unanswered`` (the Engine.IO session opened but the CONNECT got no answer in time);
    ``unreachable`` (no Engine.IO session: refused, timed out, HTTP error).
    """

    namespace: str
    status: str
    message: str
    elapsed_ms: float
    transport: str | None = None


async def try_connect(url: str, namespace: str = "/", *, auth: Any = None,
                      transports: list[str] | None = None, timeout: float = 3.0,
                      debug: bool = False) -> tuple[ConnectOutcome, socketio.AsyncClient | None]:
    """Connect one client to ``namespace``; on success the connected client is returned too."""
    client = new_client(debug=debug)
    errors: dict[str, Any] = {}

    async def on_connect_error(data: Any = None) -> None:
        # python-socketio reports a failed Engine.IO handshake here too: only a CONNECT_ERROR
        # packet (the Engine.IO session is up) is the server refusing the namespace.
        if client.eio.state == "connected":
            errors[namespace] = data

    client.on("connect_error", on_connect_error, namespace=namespace)
    started = time.monotonic()
    try:
        await asyncio.wait_for(
            client.connect(url, namespaces=[namespace], auth=auth,
                           transports=transports or ["polling", "websocket"],
                           wait_timeout=timeout), timeout + 2)
    except (socketio.exceptions.ConnectionError, asyncio.TimeoutError) as exc:
        elapsed = (time.monotonic() - started) * 1000
        # python-socketio's words for "the Engine.IO session opened, the CONNECT got no answer"
        engineio_up = str(exc) == "Unexpected connection error" or (isinstance(
            exc, asyncio.TimeoutError) and client.eio.state == "connected")
        await close_client(client)
        if namespace in errors:
            data = errors[namespace]
            message = data.get("message", str(data)) if isinstance(data, dict) else str(data)
            return ConnectOutcome(namespace, "refused", message, elapsed), None
        if engineio_up:
            return ConnectOutcome(namespace, "unanswered",
                                  f"no answer to CONNECT within {timeout:g} s", elapsed), None
        return ConnectOutcome(namespace, "unreachable", str(exc) or type(exc).__name__,
                              elapsed), None
    elapsed = (time.monotonic() - started) * 1000
    return ConnectOutcome(namespace, "accepted", "connected", elapsed, client.transport()), client


async def drop_transport(client: socketio.AsyncClient) -> None:
    """Cut a WebSocket client's transport without a Socket.IO or Engine.IO goodbye."""
    await client.eio.ws.close()


def percentile(values: list[float], pct: float) -> float:
    """The project's percentile (:func:`sio_sniffer.model.stats.percentile`), 0.0 for no
    values: the reports print a number either way."""
    return stats.percentile(values, pct) or 0.0


def hook_body(seq: int, nonce: str, subtype: str = "pre_tool",
              session_id: str = "sio-sniffer", source: str = "sio-sniffer") -> dict[str, Any]:
    """The body claude-mpm's Python hook POSTs to /api/events, with a findable nonce."""
    return {"namespace": "", "event": "claude_event", "data": {
        "type": "hook", "subtype": subtype,
        "data": {"tool_name": "Bash", "probe": nonce, "seq": seq},
        "session_id": session_id, "correlation_id": f"{nonce}-{seq}", "cwd": os.getcwd(),
        "timestamp": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "source": source}}


HookBody = Callable[[int, str], dict[str, Any]]  # (seq, nonce) -> the POST body: hook_body's shape


def find_probe(value: Any, nonce: str) -> int | None:
    """The ``seq`` of a probe event carrying ``nonce`` anywhere in ``value``, else None."""
    if isinstance(value, dict):
        if value.get("probe") == nonce and isinstance(value.get("seq"), int):
            return int(value["seq"])
        for item in value.values():
            found = find_probe(item, nonce)
            if found is not None:
                return found
    elif isinstance(value, list):
        for item in value:
            found = find_probe(item, nonce)
            if found is not None:
                return found
    return None


def new_nonce() -> str:
    return secrets.token_hex(4)


def split_namespaces(values: list[str]) -> tuple[str, ...]:
    """``--nsp /hook /system`` and ``--nsp /hook,/system`` mean the same: a comma can never be
    part of a namespace (it ends the namespace in the Socket.IO encoding)."""
    return tuple(n.strip() for value in values for n in value.split(",") if n.strip())
