"""`sio-sniffer auth-test`: the seed's connection and authentication tests, a verdict each.

No auth, a valid token, an invalid token, each namespace asked for, the time a connection takes
against a timeout, and reconnection after a dropped transport. The judging functions are shared
with ``diagnose``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sio_sniffer.diagnostics import verdict as v
from sio_sniffer.diagnostics.clients import (
    ConnectOutcome,
    close_client,
    drop_transport,
    hook_debug,
    new_client,
    try_connect,
)
from sio_sniffer.diagnostics.verdict import Check

DEFAULT_NAMESPACES = ("/hook", "/system")
INVALID_TOKEN = "sio-sniffer-invalid-token"


async def probe(url: str, namespace: str = "/", auth: Any = None, timeout: float = 3.0,
                transports: list[str] | None = None) -> ConnectOutcome:
    """Connect once and disconnect at once; only the outcome matters."""
    outcome, client = await try_connect(url, namespace, auth=auth, timeout=timeout,
                                        transports=transports, debug=hook_debug())
    if client is not None:
        await close_client(client)
    return outcome


def _seen(outcome: ConnectOutcome) -> str:
    if outcome.status == "accepted":
        return f"accepted on {outcome.namespace} ({outcome.elapsed_ms:.0f} ms)"
    if outcome.status == "refused":
        return f"refused on {outcome.namespace}: {outcome.message!r}"
    if outcome.status == "unanswered":
        return f"CONNECT to {outcome.namespace} never answered ({outcome.message})"
    return f"unreachable: {outcome.message}"


def judge_auth(none: ConnectOutcome, valid: ConnectOutcome,
               invalid: ConnectOutcome) -> list[Check]:
    """Verdicts for the three auth probes, read together (a server may have no auth at all)."""
    checks: list[Check] = []
    if none.status in ("accepted", "refused"):
        note = " (the server requires auth)" if none.status == "refused" else ""
        checks.append(Check("auth: none", v.PASS, _seen(none) + note))
    else:
        checks.append(_connect_failure("auth: none", none))
    # A server that lets a client in without auth breaks only clients that send auth anyway.
    open_door = none.status == "accepted"
    if valid.status == "accepted":
        checks.append(Check("auth: valid", v.PASS, _seen(valid)))
    elif valid.status == "refused":
        checks.append(Check.failed("auth: valid", _seen(valid), v.TOKEN_MISMATCH))
    elif valid.status == "unanswered" and open_door:
        checks.append(Check.warned("auth: valid", _seen(valid), v.AUTH_UNANSWERED_WARNING))
    elif valid.status == "unanswered":
        checks.append(Check.failed("auth: valid", _seen(valid), v.CONNECT_UNANSWERED))
    else:
        checks.append(_connect_failure("auth: valid", valid))
    if invalid.status == "refused":
        checks.append(Check("auth: invalid", v.PASS, _seen(invalid)))
    elif invalid.status == "accepted":
        if open_door:
            checks.append(Check("auth: invalid", v.PASS,
                                _seen(invalid) + " (the server checks no auth at all)"))
        else:
            checks.append(Check.failed("auth: invalid", _seen(invalid), v.ANY_TOKEN_ACCEPTED))
    elif invalid.status == "unanswered" and open_door and valid.status == "unanswered":
        # One bug, said once: the valid-token check above carries the cause and fix.
        checks.append(Check("auth: invalid", v.WARN, _seen(invalid) + " (the same as with a "
                            "valid token)", code=v.AUTH_UNANSWERED_WARNING.code))
    elif invalid.status == "unanswered" and open_door:
        checks.append(Check.warned("auth: invalid", _seen(invalid), v.AUTH_UNANSWERED_WARNING))
    elif invalid.status == "unanswered":
        checks.append(Check.failed("auth: invalid", _seen(invalid), v.CONNECT_UNANSWERED))
    else:
        checks.append(_connect_failure("auth: invalid", invalid))
    return checks


def _connect_failure(name: str, outcome: ConnectOutcome) -> Check:
    if outcome.status == "unanswered":
        return Check.failed(name, _seen(outcome), v.CONNECT_SLOW)
    return Check.failed(name, _seen(outcome), v.SERVER_DOWN if "refused" in outcome.message
                        or "Cannot connect" in outcome.message else v.NOT_ENGINEIO)


def judge_namespace(outcome: ConnectOutcome) -> Check:
    name = f"namespace {outcome.namespace}"
    if outcome.status == "accepted":
        return Check(name, v.PASS, _seen(outcome) + f" via {outcome.transport}")
    if outcome.status == "refused":
        why = v.NAMESPACE_MISSING if outcome.message == "Unable to connect" else \
            v.TOKEN_MISMATCH if "token" in outcome.message.lower() else v.CONNECT_REFUSED
        return Check.failed(name, _seen(outcome), why)
    return _connect_failure(name, outcome)


async def connect_namespace(url: str, namespace: str, token: str,
                            timeout: float) -> tuple[ConnectOutcome, Any]:
    """Connect without auth first, and with the token when the server asks for one."""
    outcome = await probe(url, namespace, timeout=timeout)
    if outcome.status == "refused" and outcome.message != "Unable to connect":
        with_token = await probe(url, namespace, auth={"token": token}, timeout=timeout)
        return with_token, {"token": token}
    return outcome, None


async def reconnection_check(url: str, auth: Any, timeout: float = 5.0,
                             transports: list[str] | None = None) -> Check:
    """Connect, cut the transport under the client, and time its way back."""
    client = new_client(reconnection=True, debug=hook_debug(), reconnection_delay=0.2,
                        reconnection_delay_max=1, randomization_factor=0)
    connected = asyncio.Event()
    dropped = asyncio.Event()
    reasons: list[str] = []

    async def on_connect() -> None:
        connected.set()

    async def on_disconnect(reason: str = "") -> None:
        reasons.append(str(reason))
        dropped.set()

    client.on("connect", on_connect)
    client.on("disconnect", on_disconnect)
    try:
        await client.connect(url, auth=auth, transports=transports or ["polling", "websocket"],
                             wait_timeout=timeout)
    except Exception as exc:
        await close_client(client)
        return Check("reconnection", v.SKIP, f"could not connect in the first place: {exc}")
    if client.transport() != "websocket":
        # A long-poll cannot be cut from the client side without python-engineio waiting out
        # the pending GET (pingInterval + pingTimeout), so the drop is simulated on WebSocket.
        await close_client(client)
        return Check("reconnection", v.SKIP, "not tested: the session stays on polling, and "
                     "a dropped transport is simulated on WebSocket only")
    try:
        connected.clear()
        await drop_transport(client)
        started = time.monotonic()
        try:
            await asyncio.wait_for(dropped.wait(), timeout)
            await asyncio.wait_for(connected.wait(), timeout)
        except asyncio.TimeoutError:
            seen = "no disconnect noticed" if not dropped.is_set() else \
                f"disconnected ({', '.join(reasons)}), not back within {timeout:g} s"
            return Check.failed("reconnection", seen, v.NO_RECONNECT)
        back = (time.monotonic() - started) * 1000
        return Check("reconnection", v.PASS,
                     f"transport dropped ({', '.join(reasons)}), reconnected in {back:.0f} ms "
                     f"via {client.transport()}", data={"reconnect_ms": round(back, 1)})
    finally:
        await close_client(client)
        await client.shutdown()


async def auth_suite(url: str, token: str, namespaces: tuple[str, ...],
                     timeout: float) -> list[Check]:
    none = await probe(url, "/", timeout=timeout)
    valid = await probe(url, "/", auth={"token": token}, timeout=timeout)
    invalid = await probe(url, "/", auth={"token": INVALID_TOKEN}, timeout=timeout)
    checks = judge_auth(none, valid, invalid)
    for namespace in namespaces:
        outcome, _ = await connect_namespace(url, namespace, token, timeout)
        checks.append(judge_namespace(outcome))
    dashboard_auth = None if none.status == "accepted" else {"token": token}
    timed = await probe(url, "/", auth=dashboard_auth, timeout=timeout)
    if timed.status == "accepted":
        checks.append(Check("connect timeout", v.PASS,
                            f"connected in {timed.elapsed_ms:.0f} ms (limit {timeout:g} s)",
                            data={"connect_ms": round(timed.elapsed_ms, 1)}))
    else:
        checks.append(Check.failed("connect timeout", _seen(timed), v.CONNECT_SLOW))
    checks.append(await reconnection_check(url, dashboard_auth, timeout=timeout))
    return checks
