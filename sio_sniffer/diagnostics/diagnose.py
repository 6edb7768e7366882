"""`sio-sniffer diagnose`: check a Socket.IO server step by step, each failure with cause and fix.

The checks run in the order the event flow needs them: TCP, ``/health``, the Engine.IO handshake
over polling, one server behind the port (sessions known to the next request), the WebSocket
upgrade, CONNECT per namespace, auth (none / valid / invalid), a hook
event in and its arrival at a dashboard client, timing over ``--events N``, heartbeats, and
reconnection after a dropped transport. A check is skipped only when an earlier failure leaves
it nothing to mean, or when the hook events are turned off (``--no-events``): they show in
every dashboard open on the server, so they are announced first and marked as diagnose's own
(:mod:`sio_sniffer.model.probes`). Every client runs through a sniffer of the command's own,
so the analysis flags (the same as the proxy's) are reported alongside.

Exit codes: 0 healthy, 1 problems found, 2 could not run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from sio_sniffer.codec.engineio import EioPacket, EioType, decode_polling_payload
from sio_sniffer.diagnostics import verdict as v
from sio_sniffer.diagnostics.auth import (
    INVALID_TOKEN,
    connect_namespace,
    judge_auth,
    judge_namespace,
    probe,
    reconnection_check,
)
from sio_sniffer.diagnostics.browser import browser_check
from sio_sniffer.diagnostics.clients import (
    HookBody,
    close_client,
    find_probe,
    hook_body,
    new_client,
    new_nonce,
    percentile,
)
from sio_sniffer.diagnostics.observe import Observer
from sio_sniffer.diagnostics.server import (
    DASHBOARD_EVENTS,
    DEFAULT_TOKEN,
    HEALTH_PATH,
    INGEST_PATH,
)
from sio_sniffer.diagnostics.verdict import Check, as_text
from sio_sniffer.model.probes import PROBE_SOURCE, SNIFFER_502_PREFIX, probe_session_id

ENGINEIO_PATH = "/socket.io/"
HOOK_WAIT = 3.0  # how long a hook event may take to reach the dashboard
SLOW_INGEST_MS = 300.0  # claude-mpm's bash fast-hook: curl --max-time 0.3
HEARTBEAT_BUDGET = 5.0  # watch heartbeats only when two rounds fit in this many seconds
REQUIRED_FIELDS = ("session_id", "correlation_id", "cwd", "subtype")
# Sessions the "one server" check opens and closes: with two servers on the port each close
# misses with a chance of 1/2, so ten rounds miss them once in a thousand runs.
ONE_SERVER_ROUNDS = 10


@dataclass
class Context:
    """What earlier checks learnt and later ones use."""

    target: str
    url: str  # where the probes go: the sniffer in front of the target, or the target
    token: str
    namespaces: tuple[str, ...]
    events: int
    timeout: float
    open_info: dict[str, Any] = field(default_factory=dict)
    websocket: bool = True
    dashboard_auth: Any = None
    root_ok: bool = True
    hook_through: bool = False
    upstream_down: bool = False  # a sniffer in front of the target answered for it: 502
    two_servers: bool = False  # sessions were unknown to the next request: two servers
    body: HookBody = hook_body  # the probe events' POST body


async def check_tcp(ctx: Context) -> Check:
    parts = urlsplit(ctx.target)
    host = parts.hostname or "localhost"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    started = time.monotonic()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), ctx.timeout)
    except asyncio.TimeoutError:
        return Check.failed("tcp", f"{host}:{port}: no answer within {ctx.timeout:g} s",
                            v.TCP_TIMEOUT)
    except OSError as exc:
        return Check.failed("tcp", f"{host}:{port}: {exc.strerror or exc}", v.SERVER_DOWN)
    writer.close()
    ms = (time.monotonic() - started) * 1000
    return Check("tcp", v.PASS, f"{host}:{port} accepts connections ({ms:.1f} ms)")


def _sniffer_502(status: int, body: bytes | str) -> bool:
    """A sniffer (ours, or a ``sio-sniffer proxy`` the target is) answered because it could not
    reach the server behind it; a server's own 502 does not carry the prefix."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return status == 502 and text.startswith(SNIFFER_502_PREFIX)


def _upstream_down(ctx: Context, check: str, request: str, body: bytes | str) -> Check:
    ctx.upstream_down = True
    return Check.failed(check, f"{request} → HTTP 502 from the sniffer in front of the server: "
                        f"{as_text(body)}", v.UPSTREAM_DOWN)


async def check_health(ctx: Context) -> Check:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ctx.timeout)) \
                as http, http.get(ctx.url + HEALTH_PATH) as resp:
            text = await resp.text(errors="replace")
            status = resp.status
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return Check("health", v.WARN, f"GET {HEALTH_PATH} failed: {exc!r}", v.NO_HEALTH.cause,
                     v.NO_HEALTH.fix, v.NO_HEALTH.code)
    if _sniffer_502(status, text):
        return _upstream_down(ctx, "health", f"GET {HEALTH_PATH}", text)
    if status != 200:
        said = f": {as_text(text)}" if text.strip() else ""
        return Check("health", v.WARN, f"GET {HEALTH_PATH} → HTTP {status}{said}",
                     v.NO_HEALTH.cause, v.NO_HEALTH.fix, v.NO_HEALTH.code)
    try:
        body = json.loads(text)
    except ValueError:
        return Check("health", v.PASS, f"GET {HEALTH_PATH} → 200 ({len(text)} bytes, not JSON)")
    shown = {k: body[k] for k in ("status", "service", "version", "port") if k in body} \
        if isinstance(body, dict) else body
    return Check("health", v.PASS, f"GET {HEALTH_PATH} → 200 {json.dumps(shown)}",
                 data={"health": body})


async def check_handshake(ctx: Context) -> Check:
    url = f"{ctx.url}{ENGINEIO_PATH}?EIO=4&transport=polling&t=diag"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ctx.timeout)) \
                as http, http.get(url) as resp:
            body = await resp.read()
            status = resp.status
            ctype = resp.headers.get("Content-Type")
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return Check.failed("handshake", f"GET {ENGINEIO_PATH} failed: {exc!r}", v.NOT_ENGINEIO)
    request = f"GET {ENGINEIO_PATH}?EIO=4&transport=polling"
    if _sniffer_502(status, body):
        return _upstream_down(ctx, "handshake", request, body)
    packets = decode_polling_payload(body, 4, ctype) if status == 200 else []
    first = packets[0] if packets else None
    if not isinstance(first, EioPacket) or first.type != EioType.OPEN:
        return Check.failed("handshake", f"{request} → HTTP {status}: {as_text(body)}",
                            v.NOT_ENGINEIO)
    try:
        info = orjson.loads(first.data)
    except orjson.JSONDecodeError:
        return Check.failed("handshake", f"OPEN packet is not JSON: {as_text(first.data)}",
                            v.NOT_ENGINEIO)
    ctx.open_info = info
    ctx.websocket = "websocket" in info.get("upgrades", [])
    shown = (f"sid {info.get('sid')}, upgrades {info.get('upgrades')}, pingInterval "
             f"{info.get('pingInterval')} ms, pingTimeout {info.get('pingTimeout')} ms, "
             f"maxPayload {info.get('maxPayload')}")
    return Check("handshake", v.PASS, f"Engine.IO v4 over polling: {shown}",
                 data={"open": info})


async def check_one_server(ctx: Context) -> Check:
    """Open sessions and, each on a fresh connection, close them again: one server knows every
    session it opened; with two on the port (reuse_port, a load balancer without sticky
    sessions) a fresh connection lands on either, and half of the closes come back 400."""
    disowned = 0
    base = f"{ctx.url}{ENGINEIO_PATH}?EIO=4&transport=polling"
    timeout = aiohttp.ClientTimeout(total=ctx.timeout)
    try:
        async with aiohttp.ClientSession(timeout=timeout,
                                         connector=aiohttp.TCPConnector(force_close=True)) as http:
            for _ in range(ONE_SERVER_ROUNDS):
                async with http.get(f"{base}&t=one") as resp:
                    body = await resp.read()
                    ctype = resp.headers.get("Content-Type")
                packets = decode_polling_payload(body, 4, ctype) if resp.status == 200 else []
                if not packets or not isinstance(packets[0], EioPacket):
                    return Check("one server", v.SKIP, f"handshake → HTTP {resp.status}")
                sid = orjson.loads(packets[0].data).get("sid")
                # "1" is the close packet: it ends the session the handshake opened
                async with http.post(f"{base}&sid={sid}", data=b"1") as resp:
                    answer = await resp.read()
                disowned += resp.status == 400 and b"session" in answer.lower()
    except (aiohttp.ClientError, asyncio.TimeoutError, orjson.JSONDecodeError) as exc:
        return Check("one server", v.SKIP, f"could not open test sessions: {exc!r}")
    if disowned:
        ctx.two_servers = True
        return Check.failed("one server", f"{disowned} of {ONE_SERVER_ROUNDS} sessions were "
                            "unknown (HTTP 400) to the request that closed them, right after "
                            "their handshake", v.TWO_SERVERS, disowned=disowned)
    return Check("one server", v.PASS, f"{ONE_SERVER_ROUNDS} sessions, each known to the next "
                 "request on a fresh connection")


async def check_websocket(ctx: Context) -> Check:
    outcome = await probe(ctx.url, "/", auth=ctx.dashboard_auth, timeout=ctx.timeout,
                          transports=["websocket"])
    offered = ctx.websocket
    # refused/unanswered are about the CONNECT, after the WebSocket session opened.
    if outcome.status in ("accepted", "refused", "unanswered") and offered:
        ctx.websocket = True
        return Check("websocket", v.PASS, f"upgrade offered; a WebSocket session opened "
                     f"({outcome.elapsed_ms:.0f} ms)")
    ctx.websocket = False
    seen = ("the handshake offers no upgrade (upgrades=[])" if not offered else
            "upgrade offered") + f"; a WebSocket-only client: {outcome.message}"
    return Check.failed("websocket", seen, v.POLLING_ONLY)


async def check_namespaces(ctx: Context) -> list[Check]:
    checks = []
    for namespace in ("/", *ctx.namespaces):
        outcome, auth = await connect_namespace(ctx.url, namespace, ctx.token, ctx.timeout)
        if namespace == "/":
            ctx.root_ok = outcome.status == "accepted"
            ctx.dashboard_auth = auth
        checks.append(judge_namespace(outcome))
    return checks


async def check_auth(ctx: Context) -> list[Check]:
    none = await probe(ctx.url, "/", timeout=ctx.timeout)
    valid = await probe(ctx.url, "/", auth={"token": ctx.token}, timeout=ctx.timeout)
    invalid = await probe(ctx.url, "/", auth={"token": INVALID_TOKEN}, timeout=ctx.timeout)
    return judge_auth(none, valid, invalid)


@dataclass
class Delivery:
    """What a dashboard client saw of a batch of probe events."""

    sent_at: dict[int, float] = field(default_factory=dict)
    first: dict[int, tuple[str, Any, float]] = field(default_factory=dict)
    copies: dict[int, int] = field(default_factory=dict)
    post_results: list[tuple[int, float, str]] = field(default_factory=list)  # status, ms, text
    dashboard_error: str | None = None


async def deliver(ctx: Context, count: int) -> Delivery:
    """Connect a dashboard on ``/``, POST ``count`` hook events, collect what arrives."""
    nonce = new_nonce()
    got = Delivery()
    all_in = asyncio.Event()
    dashboard = new_client()

    async def on_any(name: str, *args: Any) -> None:
        seq = find_probe(list(args), nonce)
        if seq is None:
            return
        got.copies[seq] = got.copies.get(seq, 0) + 1
        if seq not in got.first:
            got.first[seq] = (name, args[0] if args else None, time.monotonic())
            if len(got.first) == count:
                all_in.set()

    dashboard.on("*", on_any)
    try:
        await dashboard.connect(ctx.url, auth=ctx.dashboard_auth, wait_timeout=ctx.timeout)
    except Exception as exc:
        got.dashboard_error = str(exc)
        await close_client(dashboard)
        return got
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as http:
            for seq in range(count):
                got.sent_at[seq] = time.monotonic()
                try:
                    async with http.post(ctx.url + INGEST_PATH,
                                         json=ctx.body(seq, nonce)) as resp:
                        text = (await resp.text()).strip()
                        got.post_results.append(
                            (resp.status, (time.monotonic() - got.sent_at[seq]) * 1000, text))
                except asyncio.TimeoutError:
                    got.post_results.append((0, 2000.0, "timeout"))
                except aiohttp.ClientError as exc:
                    got.post_results.append((-1, 0.0, str(exc)))
        if any(200 <= status < 300 for status, _, _ in got.post_results):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(all_in.wait(), HOOK_WAIT)
            # Linger briefly so a second copy (two relay paths) is seen too.
            await asyncio.sleep(0.2)
    finally:
        await close_client(dashboard)
    return got


async def check_hook(ctx: Context) -> Check:
    got = await deliver(ctx, 1)
    if got.dashboard_error is not None:
        return Check("hook event", v.SKIP, f"no dashboard client on /: {got.dashboard_error}")
    status, ms, text = got.post_results[0]
    posted = f"POST {INGEST_PATH} → " + (f"HTTP {status} in {ms:.0f} ms" if status > 0 else text)
    if status == 0:
        return Check.failed("hook event", posted, v.HOOK_TIMEOUT)
    if status < 0:
        return Check.failed("hook event", posted, v.SERVER_DOWN)
    if status in (404, 405):
        return Check.failed("hook event", posted, v.HOOK_NO_ENDPOINT)
    if not 200 <= status < 300:
        return Check.failed("hook event", posted + (f": {as_text(text)}" if text else ""),
                            v.HOOK_REJECTED, status=status)
    if 0 not in got.first:
        return Check.failed("hook event", posted + f"; nothing reached the dashboard client "
                            f"within {HOOK_WAIT:g} s",
                            v.HOOK_TO_OTHER_SERVER if ctx.two_servers else v.HOOK_NOT_RELAYED)
    name, payload, at = got.first[0]
    latency = (at - got.sent_at[0]) * 1000
    seen = posted + f"; arrived as {name!r} after {latency:.1f} ms"
    ctx.hook_through = True
    if name not in DASHBOARD_EVENTS:
        return Check.failed("hook event", seen, v.HOOK_WRONG_NAME, event_name=name)
    missing = [k for k in REQUIRED_FIELDS if not isinstance(payload, dict) or k not in payload]
    if missing:
        return Check.failed("hook event", seen + f", missing {', '.join(missing)}",
                            v.HOOK_FIELDS_LOST, missing=missing)
    if got.copies.get(0, 0) > 1:
        return Check.failed("hook event", seen + f", {got.copies[0]} copies", v.HOOK_DUPLICATE)
    if ms > SLOW_INGEST_MS:
        return Check.failed("hook event", seen, v.HOOK_SLOW)
    return Check("hook event", v.PASS, seen)


async def check_timing(ctx: Context) -> Check:
    got = await deliver(ctx, ctx.events)
    if got.dashboard_error is not None:
        return Check("timing", v.SKIP, f"no dashboard client on /: {got.dashboard_error}")
    latencies = [(at - got.sent_at[seq]) * 1000 for seq, (_, _, at) in got.first.items()]
    lost = ctx.events - len(got.first)
    failed_posts = sum(1 for status, _, _ in got.post_results if not 200 <= status < 300)
    data = {"events": ctx.events, "delivered": len(got.first), "lost": lost,
            "failed_posts": failed_posts,
            "latency_ms": {f"p{p}": round(percentile(latencies, p), 3) for p in (50, 90, 99)}}
    seen = f"{len(got.first)}/{ctx.events} delivered, lost {lost}" + (
        f"; latency p50 {percentile(latencies, 50):.1f} ms, p90 "
        f"{percentile(latencies, 90):.1f} ms, p99 {percentile(latencies, 99):.1f} ms"
        if latencies else "")
    if lost:
        return Check.failed("timing", seen,
                            v.HOOK_TO_OTHER_SERVER if ctx.two_servers else v.EVENTS_LOST, **data)
    return Check("timing", v.PASS, seen, data=data)


async def check_heartbeat(ctx: Context) -> Check:
    interval = float(ctx.open_info.get("pingInterval", 25000)) / 1000
    timeout = float(ctx.open_info.get("pingTimeout", 20000)) / 1000
    settings = f"pingInterval {interval * 1000:.0f} ms + pingTimeout {timeout * 1000:.0f} ms"
    watch = 2 * interval + timeout + 0.5
    if watch > HEARTBEAT_BUDGET:
        return Check("heartbeat", v.PASS, f"{settings}: too long to watch here; any proxy or "
                     f"load balancer on the path needs a read timeout above "
                     f"{interval + timeout:.0f} s")
    client = new_client()
    dropped = asyncio.Event()
    reasons: list[str] = []

    async def on_disconnect(reason: str = "") -> None:
        reasons.append(str(reason))
        dropped.set()

    client.on("disconnect", on_disconnect)
    try:
        await client.connect(ctx.url, auth=ctx.dashboard_auth, wait_timeout=ctx.timeout,
                             transports=["websocket"] if ctx.websocket else ["polling"])
    except Exception as exc:
        await close_client(client)
        return Check("heartbeat", v.SKIP, f"could not connect: {exc}")
    try:
        await asyncio.wait_for(dropped.wait(), watch)
    except asyncio.TimeoutError:
        await close_client(client)
        return Check("heartbeat", v.PASS, f"{settings}: connection held for {watch:.1f} s")
    await close_client(client)
    return Check.failed("heartbeat", f"{settings}: the client dropped the connection "
                        f"({', '.join(reasons)}) while idle", v.PING_TIMEOUT)


async def check_reconnection(ctx: Context) -> Check:
    return await reconnection_check(ctx.url, ctx.dashboard_auth, timeout=max(ctx.timeout, 5.0),
                                    transports=None if ctx.websocket else ["polling"])


Step = Callable[[Context], Awaitable["Check | list[Check]"]]


def announcement(ctx: Context, session_id: str, browser: bool) -> str:
    """What the hook steps are about to send and where, said before they do."""
    count = (1 + ctx.events if ctx.root_ok else 0) + (ctx.events if browser else 0)
    return (f"sending up to {count} test hook events (claude_event pre_tool, tool Bash) to "
            f"{ctx.target}{INGEST_PATH}, marked session_id {session_id!r} and source "
            f"{PROBE_SOURCE!r}: every dashboard open on this server shows them and a proxy in "
            f"front logs them (--no-events skips this)")


async def diagnose(target: str, *, namespaces: tuple[str, ...] = (), token: str = DEFAULT_TOKEN,
                   events: int = 20, timeout: float = 3.0, sniff: bool = True,
                   browser: bool = False, send_events: bool = True,
                   on_check: Callable[[Check], None] | None = None,
                   on_note: Callable[[str], None] | None = None
                   ) -> tuple[list[Check], list[dict[str, Any]], str | None]:
    """Run every check; returns (checks, sniffer flags as dicts, sniffer URL or None).

    ``on_note`` hears what diagnose is about to do to the server (the hook events it sends)."""
    observer = Observer(target) if sniff else None
    url = await observer.start() if observer is not None else target
    session_id = probe_session_id(new_nonce())
    ctx = Context(target, url, token, namespaces, events, timeout,
                  body=functools.partial(hook_body, session_id=session_id, source=PROBE_SOURCE))
    checks: list[Check] = []

    def add(result: Check | list[Check]) -> None:
        for check in result if isinstance(result, list) else [result]:
            checks.append(check)
            if on_check is not None:
                on_check(check)

    def skip(names: list[str], why: str) -> None:
        add([Check(name, v.SKIP, f"skipped: {why}") for name in names])

    try:
        add(await check_tcp(ctx))
        if checks[-1].status == v.FAIL:
            skip(["handshake", "namespaces", "hook event", "reconnection"],
                 "nothing accepts TCP connections there")
            return checks, [], url if observer is not None else None
        add(await check_health(ctx))
        if ctx.upstream_down:
            skip(["handshake", "websocket", "namespaces", "hook event", "reconnection"],
                 "the server behind the sniffer is down")
            return checks, _flags(observer), url if observer is not None else None
        add(await check_handshake(ctx))
        if checks[-1].status == v.FAIL:
            skip(["websocket", "namespaces", "hook event", "reconnection"],
                 "no Engine.IO server to talk to")
            return checks, _flags(observer), url if observer is not None else None
        add(await check_one_server(ctx))
        add(await check_namespaces(ctx))
        add(await check_websocket(ctx))
        add(await check_auth(ctx))
        if send_events and (ctx.root_ok or browser) and on_note is not None:
            on_note(announcement(ctx, session_id, browser))
        if not ctx.root_ok:
            skip(["hook event", "timing", "heartbeat", "reconnection"],
                 "no client can connect to / to act as the dashboard")
        else:
            if not send_events:
                skip(["hook event", "timing"], "--no-events: no test events sent")
            else:
                add(await check_hook(ctx))
                if ctx.hook_through:
                    add(await check_timing(ctx))
                else:
                    skip(["timing"], "no hook event reached the dashboard")
            add(await check_heartbeat(ctx))
            add(await check_reconnection(ctx))
        if browser and not send_events:
            skip(["browser"], "--no-events: no test events sent")
        elif browser:
            add(await browser_check(ctx.url, ("/", *ctx.namespaces), ctx.dashboard_auth,
                                    ctx.events, ctx.timeout, body=ctx.body))
    finally:
        if observer is not None:
            await observer.stop()
    return checks, _flags(observer), url if observer is not None else None


def _flags(observer: Observer | None) -> list[dict[str, Any]]:
    return [f.to_dict() for f in observer.flags()] if observer is not None else []
