"""Client-side helpers shared by the diagnostic commands (python-socketio and aiohttp peers)."""

from __future__ import annotations

import logging
import os

import socketio

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
