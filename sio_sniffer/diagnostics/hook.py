"""`sio-sniffer hook-test`: behave like claude-mpm's hook handler and report every send.

``--mode http`` (claude-mpm 5.4 and later): each event is one HTTP POST to ``/api/events`` on a
fresh connection with the hook's 2 s timeout and no retry, the body shaped as the Python hook
shapes it. ``--mode socketio`` (3.x/4.x and the seed's picture): one long-lived python-socketio
client on ``/hook`` and ``/system`` with ``auth={"token": ...}``, emitting ``claude_event``;
its disconnects and reconnections are reported. ``CLAUDE_MPM_HOOK_DEBUG=true`` shows every
packet (the python-socketio and Engine.IO loggers, or each HTTP request and answer).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

from sio_sniffer.diagnostics.clients import (
    close_client,
    hook_body,
    new_client,
    new_nonce,
)
from sio_sniffer.diagnostics.server import INGEST_PATH

HOOK_TIMEOUT = 2.0  # claude-mpm's Python hook: requests.post(..., timeout=2), no retry
SUBTYPES = ("pre_tool", "post_tool", "user_prompt", "subagent_start", "subagent_stop", "stop")


@dataclass
class Send:
    seq: int
    ok: bool
    outcome: str
    elapsed_ms: float


@dataclass
class HookReport:
    mode: str
    url: str
    sends: list[Send] = field(default_factory=list)
    connected: bool = False
    disconnects: list[str] = field(default_factory=list)
    reconnects: int = 0
    problem: str | None = None

    @property
    def failed(self) -> int:
        return sum(1 for s in self.sends if not s.ok)


async def send_http(url: str, seq: int, nonce: str, debug: bool = False) -> Send:
    """One hook POST, as the Python hook sends it: new connection, 2 s timeout, no retry."""
    body = hook_body(seq, nonce, SUBTYPES[seq % len(SUBTYPES)])
    if debug:
        print(f"[hook] POST {url}{INGEST_PATH} {json.dumps(body)}", file=sys.stderr)
    started = time.monotonic()
    try:
        async with aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=HOOK_TIMEOUT),
                connector=aiohttp.TCPConnector(force_close=True)) as http, \
                http.post(url + INGEST_PATH, json=body) as resp:
            text = (await resp.text()).strip()
            status = resp.status
    except asyncio.TimeoutError:
        return Send(seq, False, f"timed out after {HOOK_TIMEOUT:g} s: the hook drops the event",
                    (time.monotonic() - started) * 1000)
    except aiohttp.ClientError as exc:
        return Send(seq, False, f"connection failed: {exc}", (time.monotonic() - started) * 1000)
    elapsed = (time.monotonic() - started) * 1000
    if debug:
        print(f"[hook] <- {status} {text[:200]}", file=sys.stderr)
    if 200 <= status < 300:
        return Send(seq, True, f"HTTP {status}", elapsed)
    return Send(seq, False, f"HTTP {status}" + (f": {text[:120]}" if text else ""), elapsed)


async def _send_all(report: HookReport, send_one: Callable[[int], Awaitable[Send]], events: int,
                    continuous: float | None, interval: float, on_send: Any) -> None:
    """``events`` sends back to back, or one per ``interval`` for ``continuous`` seconds."""
    deadline = time.monotonic() + continuous if continuous else None
    seq = 0
    while (seq < events) if deadline is None else (time.monotonic() < deadline):
        send = await send_one(seq)
        report.sends.append(send)
        on_send(send)
        seq += 1
        if deadline is not None:
            await asyncio.sleep(interval)


async def run_http(url: str, events: int, continuous: float | None, interval: float,
                   debug: bool, on_send: Any) -> HookReport:
    report = HookReport("http", url)
    nonce = new_nonce()
    await _send_all(report, lambda seq: send_http(url, seq, nonce, debug), events, continuous,
                    interval, on_send)
    report.connected = any(not s.outcome.startswith("connection failed") for s in report.sends)
    return report


async def run_socketio(url: str, events: int, continuous: float | None, interval: float,
                       token: str, debug: bool, on_send: Any,
                       namespaces: tuple[str, ...] = ("/hook", "/system")) -> HookReport:
    report = HookReport("socketio", url)
    client = new_client(reconnection=True, debug=debug, reconnection_delay=0.5,
                        reconnection_delay_max=2)
    connects = 0
    errors: dict[str, Any] = {}

    async def on_connect() -> None:
        nonlocal connects
        connects += 1

    async def on_disconnect(reason: str = "") -> None:
        report.disconnects.append(str(reason) or "unknown")

    def on_connect_error_for(namespace: str) -> Any:
        async def on_connect_error(data: Any = None) -> None:
            errors[namespace] = data
        return on_connect_error

    client.on("connect", on_connect, namespace=namespaces[0])
    client.on("disconnect", on_disconnect, namespace=namespaces[0])
    for namespace in namespaces:
        client.on("connect_error", on_connect_error_for(namespace), namespace=namespace)
    try:
        await client.connect(url, namespaces=list(namespaces), auth={"token": token},
                             wait_timeout=3)
    except socketio.exceptions.ConnectionError as exc:
        refused = "; ".join(f"{ns}: {_message(data)}" for ns, data in errors.items())
        report.problem = f"could not connect: {refused or exc}"
        if any(_message(data) == "Unable to connect" for data in errors.values()):
            report.problem += (" — the server has no such namespace (claude-mpm's monitor has "
                               "only '/'; its hooks POST /api/events: use --mode http)")
        await close_client(client)
        return report
    report.connected = True
    nonce = new_nonce()
    try:
        await _send_all(report, lambda seq: _emit_one(client, seq, nonce, namespaces), events,
                        continuous, interval, on_send)
    finally:
        report.reconnects = max(0, connects - 1)
        seen = len(report.disconnects)
        await close_client(client)
        del report.disconnects[seen:]  # our own goodbye is not a lost connection
    return report


async def _emit_one(client: socketio.AsyncClient, seq: int, nonce: str,
                    namespaces: tuple[str, ...]) -> Send:
    body = hook_body(seq, nonce, SUBTYPES[seq % len(SUBTYPES)])["data"]
    started = time.monotonic()
    if not client.connected:
        return Send(seq, False, "not connected (reconnecting): the event is dropped", 0.0)
    try:
        ack = await client.call("claude_event", body, namespace=namespaces[0],
                                timeout=HOOK_TIMEOUT)
    except socketio.exceptions.TimeoutError:
        # Servers that take the event without an ack handler never answer: that is "sent".
        return Send(seq, True, f"emitted on {namespaces[0]}, no ack within {HOOK_TIMEOUT:g} s",
                    (time.monotonic() - started) * 1000)
    except socketio.exceptions.BadNamespaceError:
        return Send(seq, False, f"{namespaces[0]} is not connected: the event is dropped", 0.0)
    elapsed = (time.monotonic() - started) * 1000
    if len(namespaces) > 1:
        await client.emit("system_event", {"type": "system", "subtype": "heartbeat",
                                           "seq": seq}, namespace=namespaces[1])
    return Send(seq, True, f"acked {json.dumps(ack)}", elapsed)


def _message(data: Any) -> str:
    return str(data.get("message", data)) if isinstance(data, dict) else str(data)
