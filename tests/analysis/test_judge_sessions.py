"""The judge on sessions that end: no flag for what a closing client leaves behind.

Real Node socket.io servers (judge_server.js) and socket.io-clients (judge_client.js), and
python-socketio servers, behind a real Sniffer with 1 s deadlines. Each healthy case, seen in the
official client test suites, must raise no flag; its broken twin must still be flagged with the
cause the traffic shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

from sio_sniffer import model
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F
from sio_sniffer.testing import Recorder
from tests.rigs import NODE_ENV, generic, judging, node_server

HERE = Path(__file__).parent
JUDGE_SERVER = HERE / "judge_server.js"
TIMEOUT = 10.0
DEADLINE = 1.0


class NodeClient:
    """judge_client.js: the JSON lines it prints, awaitable one by one."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self, key: str) -> Any:
        """The value of the next printed line that has ``key``."""
        assert self.process.stdout is not None
        while True:
            raw = await asyncio.wait_for(self.process.stdout.readline(), TIMEOUT)
            assert raw, f"the client exited before printing {key!r}"
            item = json.loads(raw)
            if key in item:
                return item[key]


@contextlib.asynccontextmanager
async def node_client(url: str, mode: str) -> AsyncIterator[NodeClient]:
    process = await asyncio.create_subprocess_exec(
        "node", str(HERE / "judge_client.js"), url, mode, env=NODE_ENV,
        stdout=asyncio.subprocess.PIPE)
    try:
        yield NodeClient(process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def sniffed(upstream: str) -> AsyncIterator[tuple[str, Recorder]]:
    """A sniffer in front of ``upstream``: its URL and the records it judged."""
    async with judging(upstream, generic(DEADLINE)) as (sniffer, rec):
        yield sniffer.url, rec


def flags(rec: Recorder) -> list[tuple[Any, Any, Any]]:
    return [(r.get("flag"), r.get("code"), r.get("cause")) for r in rec.of(model.FLAG)]


async def past_deadline(rec: Recorder, since: float) -> None:
    """Until the sniffer heard a record stamped after ``since`` + deadline (the servers ping
    every 300 ms), so whatever was pending at ``since`` has been judged."""
    await rec.wait_for(lambda r: r.ts > since + DEADLINE + 0.1, timeout=TIMEOUT)


def sid_of(rec: Recorder, event: str, **fields: Any) -> str:
    """The Engine.IO sid of the first ``event`` record with ``fields``."""
    sid = rec.of(event, **fields)[0].eio_sid
    assert sid is not None
    return sid


# 5: the probe WebSocket closes because the client closes the whole session.


async def test_5_session_closed_with_its_probe_is_no_failed_upgrade() -> None:
    """The client closes while its probe WebSocket is open: the probe closes with the session,
    no upgrade_failed."""
    async with node_server(JUDGE_SERVER, "healthy") as upstream, sniffed(upstream) as (url, rec), \
            node_client(url, "stay") as watcher:
        await watcher.line("connected")
        async with node_client(url, "close_probe") as closer:
            await closer.line("closed")
            close = await rec.wait(model.EIO_CLOSE, reason="client sent close")
        sid = close.eio_sid
        probe = await rec.wait(model.WS_CLOSE, eio_sid=sid)
        assert rec.of(model.WS_OPEN, eio_sid=sid) and not rec.of(model.EIO_UPGRADE, eio_sid=sid)
        await past_deadline(rec, max(probe.ts, close.ts))
    assert not rec.flags(F.UPGRADE_FAILED), flags(rec)


async def test_5_probe_never_answered_is_a_failed_upgrade() -> None:
    """The server never answers the probe while the session lives on over polling:
    upgrade_failed, hinting at the probe, not at the Upgrade headers (the WebSocket opened)."""
    async with node_server(JUDGE_SERVER, "no_probe") as upstream, sniffed(upstream) as (url, rec), \
            node_client(url, "stay") as client:
        await client.line("connected")
        flag = await rec.wait_flag(F.UPGRADE_FAILED)
    assert flag.get("code") == "upgrade" and "probe unanswered" in flag.get("cause")
    assert rec.of(model.WS_OPEN, eio_sid=flag.eio_sid)
    assert "Upgrade/Connection" not in flag.get("hint") and "probe" in flag.get("hint")


# 7: the server's CONNECT answer passes after the client's close frame.


async def test_7_connect_answered_after_close_is_answered() -> None:
    """The client sends CONNECT and closes before the (slow) server answers; the answer
    passes after the close frame: it still answers, no connect_unanswered."""
    async with node_server(JUDGE_SERVER, "slow") as upstream, sniffed(upstream) as (url, rec), \
            node_client(url, "stay") as watcher:
        await watcher.line("connected")
        async with node_client(url, "close_early") as closer:
            await closer.line("closed")
        closed = await rec.wait(model.WS_CLOSE, dir="in")
        answer = await rec.wait(model.SIO_CONNECT_OK, eio_sid=closed.eio_sid)
        assert answer.ts > closed.ts
        [connect] = rec.of(model.SIO_CONNECT, eio_sid=closed.eio_sid)
        await past_deadline(rec, connect.ts)
    assert not rec.flags(F.CONNECT_UNANSWERED), flags(rec)


async def test_7_connect_never_answered_is_flagged() -> None:
    """The server's middleware never calls next() while the client waits: connect_unanswered."""
    async with node_server(JUDGE_SERVER, "silent") as upstream, sniffed(upstream) as (url, rec), \
            node_client(url, "stay"):
        flag = await rec.wait_flag(F.CONNECT_UNANSWERED)
    assert flag.get("code") == "no_answer" and flag.nsp == "/"
    assert "no answer within 1 s" in flag.get("cause")


# 8: the 400 that answers a long-poll still in flight after the client closed.


async def test_8_400_after_the_client_closed_is_no_restart(py_server_factory: Any) -> None:
    """A python-socketio polling client disconnects with a long-poll in flight;
    python-engineio answers that poll 400 once the session is gone: no unknown_sid."""
    server = await py_server_factory()
    async with sniffed(server.url) as (url, rec):
        watcher = socketio.AsyncClient(reconnection=False)
        closer = socketio.AsyncClient(reconnection=False)
        await watcher.connect(url, transports=["websocket"], wait_timeout=5)
        try:
            await closer.connect(url, transports=["polling"], wait_timeout=5)
            await closer.disconnect()
            close = await rec.wait(model.EIO_CLOSE, reason="client sent close")
            answer = await rec.wait(model.HTTP, eio_sid=close.eio_sid, status=400)
            assert answer.ts >= close.ts and answer.get("method") == "GET"
            await past_deadline(rec, answer.ts)
        finally:
            await watcher.disconnect()
    assert not rec.flags(F.UNKNOWN_SID), flags(rec)


async def test_8_server_forgetting_a_live_session_is_flagged() -> None:
    """The server drops the session while the client keeps polling (as a restart does):
    unknown_sid, restarted."""
    async with node_server(JUDGE_SERVER, "forget") as upstream, sniffed(upstream) as (url, rec), \
            node_client(url, "poll_forget") as client:
        await client.line("forgotten")
        flag = await rec.wait_flag(F.UNKNOWN_SID)
    assert flag.get("code") == "restarted" and "no longer knows this session" in flag.get("cause")
    assert not rec.of(model.EIO_CLOSE, eio_sid=flag.eio_sid, reason="client sent close") or \
        rec.of(model.EIO_CLOSE, eio_sid=flag.eio_sid)[0].ts > flag.ts


# 10: a refusal is not a missing namespace.


async def refusal(rec: Recorder, url: str, mode: str) -> Record:
    """The connect_error flag for a client connecting as ``mode`` ("nsp:NAME[:TOKEN]")."""
    nsp = mode.split(":")[1]
    async with node_client(url, mode) as client:
        await client.line("connect_error")
    return await rec.wait_for(lambda r: r.event == model.FLAG and r.nsp == nsp
                              and r.get("flag") == F.CONNECT_ERROR, timeout=TIMEOUT)


async def test_10_node_auth_refusal_and_unknown_namespace() -> None:
    """Node: a middleware's "Auth failed" on /admin is a refusal with the auth hint even though
    the server accepted "/"; its "Invalid namespace" for /nope is the namespace case."""
    async with node_server(JUDGE_SERVER, "auth") as upstream, sniffed(upstream) as (url, rec), \
            node_client(url, "nsp:/") as accepted:
        await accepted.line("connected")
        auth = await refusal(rec, url, "nsp:/admin:bad")
        nsp = await refusal(rec, url, "nsp:/nope")
    assert auth.get("code") == F.CONNECT_ERROR_REFUSED and auth.nsp == "/admin"
    assert "Auth failed" in auth.get("cause") and "auth payload" in auth.get("hint")
    assert "namespace /admin" not in auth.get("hint")
    assert nsp.get("code") == F.CONNECT_ERROR_NAMESPACE and nsp.nsp == "/nope"
    assert "Invalid namespace" in nsp.get("cause") and "accepts /" in nsp.get("hint")


async def test_10_python_refusals_and_unknown_namespace(py_server_factory: Any) -> None:
    """python-socketio: a connect handler returning False or raising ConnectionRefusedError is
    a refusal; its "Unable to connect" for an unregistered namespace is the namespace case."""

    def setup(sio: socketio.AsyncServer, app: web.Application) -> None:
        @sio.on("connect", namespace="/admin")
        async def admin(sid: str, environ: dict[str, Any], auth: Any) -> bool:
            return False

        @sio.on("connect", namespace="/vip")
        async def vip(sid: str, environ: dict[str, Any], auth: Any) -> None:
            raise socketio.exceptions.ConnectionRefusedError("bad token")

    server = await py_server_factory(setup, namespaces=["/", "/admin", "/vip"])
    async with sniffed(server.url) as (url, rec):
        rejected = await refusal(rec, url, "nsp:/admin:bad")
        raised = await refusal(rec, url, "nsp:/vip:bad")
        missing = await refusal(rec, url, "nsp:/nope")
    for flag in (rejected, raised):
        assert flag.get("code") == F.CONNECT_ERROR_REFUSED and "auth payload" in flag.get("hint")
    assert "rejected by server" in rejected.get("cause") and "bad token" in raised.get("cause")
    assert missing.get("code") == F.CONNECT_ERROR_NAMESPACE and missing.nsp == "/nope"
    assert "Unable to connect" in missing.get("cause")
    assert "no namespace /nope" in missing.get("hint")
