"""The issue's twelve scenarios: deliberately broken real servers, real clients, through the proxy.

Each broken run must raise the expected flag with the right cause, and the same traffic against
the healthy server must raise no flag at all. Deadlines are shortened to 1 s to keep this fast.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from sio_sniffer import model
from sio_sniffer.analysis import AnalysisConfig, load_profile
from sio_sniffer.diagnostics.server import DiagnosticServer, Faults
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from tests.analysis.analysis_wire import hook_body
from tests.rigs import node_server

HERE = Path(__file__).resolve().parent
ACK_SERVER = HERE / "ack_server.js"
TIMEOUT = 10.0


class Recorder:
    """A sink keeping every record; waits are event-driven, never fixed sleeps."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._changed = asyncio.Event()

    def __call__(self, record: Record) -> None:
        self.records.append(record)
        self._changed.set()

    def flags(self, kind: str | None = None) -> list[Record]:
        return [r for r in self.records
                if r.event == model.FLAG and (kind is None or r.get("flag") == kind)]

    async def wait_for(self, predicate: Callable[[], bool], what: str) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + TIMEOUT
        while not predicate():
            self._changed.clear()
            remaining = end - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}; flags: "
                                     f"{[f.to_dict() for f in self.flags()]}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def flag(self, kind: str) -> Record:
        await self.wait_for(lambda: bool(self.flags(kind)), f"a {kind} flag")
        return self.flags(kind)[0]

    def summary(self) -> dict[str, Any]:
        [summary] = [r for r in self.records if r.event == model.SUMMARY]
        return dict(summary.extra)


@dataclass
class Rig:
    sniffer: Sniffer
    rec: Recorder

    @property
    def url(self) -> str:
        return self.sniffer.url


def analysis_config(**overrides: Any) -> AnalysisConfig:
    settings: dict[str, Any] = {"profile": load_profile("claude-mpm"), "deadline": 1.0,
                                "connect_deadline": 1.0, "ack_deadline": 1.0}
    settings.update(overrides)
    return AnalysisConfig(**settings)


@contextlib.asynccontextmanager
async def proxied(upstream: str, **overrides: Any) -> AsyncIterator[Rig]:
    rec = Recorder()
    sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=upstream,
                                  analysis=analysis_config(**overrides)), sinks=[rec])
    await sniffer.start()
    try:
        yield Rig(sniffer, rec)
    finally:
        await sniffer.stop()


@contextlib.asynccontextmanager
async def diagnostic(faults: Faults | None = None, **kwargs: Any) -> AsyncIterator[Rig]:
    server = DiagnosticServer(faults=faults or Faults(), **kwargs)
    await server.start()
    try:
        async with proxied(server.url) as rig:
            yield rig
    finally:
        await server.stop()


class Dashboard:
    """A python-socketio client that queues every event it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.sid = ""  # the Engine.IO sid, kept after the client disconnects

    async def connect(self, url: str, nsp: str = "/", auth: Any = None) -> None:
        async def any_event(name: str, *args: Any) -> None:
            await self.events.put((name, args[0] if args else None))

        self.client.on("*", any_event, namespace=nsp)
        await self.client.connect(url, namespaces=[nsp], auth=auth, wait_timeout=2)
        self.sid = str(self.client.eio.sid)

    async def receive(self, *names: str) -> Any:
        """The payload of the next event with one of ``names``."""
        while True:
            name, data = await asyncio.wait_for(self.events.get(), TIMEOUT)
            if name in names:
                return data

    async def close(self) -> None:
        await self.client.disconnect()


@contextlib.asynccontextmanager
async def dashboards(url: str, count: int = 1) -> AsyncIterator[list[Dashboard]]:
    boards = [Dashboard() for _ in range(count)]
    try:
        for board in boards:
            await board.connect(url)
        yield boards
    finally:
        for board in boards:
            await board.close()


async def post_hook(url: str, n: int = 1) -> int:
    async with aiohttp.ClientSession() as http, \
            http.post(f"{url}/api/events", json=hook_body(n=n)) as response:
        await response.read()
        return response.status


async def healthy_end(rig: Rig) -> dict[str, Any]:
    """Stop the sniffer (which emits the summary) and check that nothing was flagged."""
    await rig.sniffer.stop()
    assert rig.rec.flags() == []
    summary = rig.rec.summary()
    assert summary["expectations"]["open_at_exit"] == 0
    return summary


# 1, 2, 3, 4, 6, 7, 8: hook POSTs relayed by the diagnostic server (claude-mpm layout).


async def test_healthy_hook_relay_raises_no_flag() -> None:
    """Healthy server: three dashboards get every hook POST; no flag, every expectation met."""
    async with diagnostic() as rig, dashboards(rig.url, 3) as boards:
        for n in range(3):
            assert await post_hook(rig.url, n) == 204
            for board in boards:
                payload = await board.receive("tool_event")
                assert payload["correlation_id"] == f"corr-{n:06d}"
        summary = await healthy_end(rig)
    assert summary["expectations"]["matched"] == 3
    assert summary["broadcasts"] >= 3


async def test_1_no_dashboard_connected() -> None:
    """A hook POST with no dashboard connected: lost, cause no_receivers."""
    async with diagnostic() as rig:
        assert await post_hook(rig.url) == 204
        flag = await rig.rec.flag(F.LOST)
    assert flag.get("code") == F.LOST_NO_RECEIVERS
    assert flag.get("path") == "/api/events"


async def test_2_dashboard_on_the_wrong_namespace() -> None:
    """Dashboard on /hook, server relays on /: connect_error with the message, lost (namespace)."""
    async with diagnostic(Faults(reject_namespaces=True)) as rig:
        board = Dashboard()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await board.connect(rig.url, nsp="/hook")
        refused = await rig.rec.flag(F.CONNECT_ERROR)
        assert refused.nsp == "/hook" and "Unable to connect" in refused.get("cause")
        assert await post_hook(rig.url) == 204
        flag = await rig.rec.flag(F.LOST)
    assert flag.get("code") == F.LOST_NAMESPACE
    assert "/hook" in flag.get("cause")


async def test_3_relay_to_a_room_nobody_joined() -> None:
    """The server relays to an empty room: lost, connected clients did not receive it."""
    async with diagnostic(Faults(relay_room="nobody_room")) as rig, \
            dashboards(rig.url) as [board]:
        await board.receive("dashboard:welcome")
        assert await post_hook(rig.url) == 204
        flag = await rig.rec.flag(F.LOST)
    assert flag.get("code") == F.LOST_NOT_DELIVERED
    assert flag.get("receivers") == [board.sid]


async def test_4_event_name_the_dashboard_does_not_listen_to() -> None:
    """The server relays as mpm_event, which the claude-mpm dashboard ignores: unlistened_event."""
    async with diagnostic(Faults(wrong_event_name="mpm_event")) as rig, \
            dashboards(rig.url) as [board]:
        assert await post_hook(rig.url) == 204
        await board.receive("mpm_event")
        flag = await rig.rec.flag(F.UNLISTENED_EVENT)
    assert flag.name == "mpm_event" and flag.eio_sid == board.sid
    assert "claude_event" in flag.get("listens")


async def test_6_ingest_answered_500() -> None:
    """The hook POST is answered 500: ingest_rejected, and the event is lost for that reason."""
    async with diagnostic(Faults(hook_status=500)) as rig, dashboards(rig.url):
        assert await post_hook(rig.url) == 500
        rejected = await rig.rec.flag(F.INGEST_REJECTED)
        lost = await rig.rec.flag(F.LOST)
    assert rejected.get("status") == 500
    assert lost.get("code") == F.LOST_INGEST_ERROR


async def test_6_ingest_answered_after_500_ms() -> None:
    """The hook POST is answered after 500 ms: slow_ingest above the 300 ms limit."""
    async with diagnostic(Faults(slow_ingest_ms=500)) as rig, dashboards(rig.url) as [board]:
        assert await post_hook(rig.url) == 204
        await board.receive("tool_event")
        flag = await rig.rec.flag(F.SLOW_INGEST)
    assert flag.get("duration_ms") >= 500 and flag.get("limit_ms") == 300


async def test_7_event_emitted_twice() -> None:
    """The server emits each relay twice: duplicate, naming the client."""
    async with diagnostic(Faults(emit_twice=True)) as rig, dashboards(rig.url) as [board]:
        assert await post_hook(rig.url) == 204
        await board.receive("tool_event")
        await board.receive("tool_event")
        flag = await rig.rec.flag(F.DUPLICATE)
    assert flag.eio_sid == board.sid and flag.name == "tool_event"


async def test_8_correlation_id_dropped() -> None:
    """The relay drops correlation_id (claude-mpm profile): fields_lost naming the field."""
    async with diagnostic(Faults(drop_correlation_id=True)) as rig, \
            dashboards(rig.url) as [board]:
        assert await post_hook(rig.url) == 204
        payload = await board.receive("tool_event")
        assert "correlation_id" not in payload
        flag = await rig.rec.flag(F.FIELDS_LOST)
    assert flag.get("fields") == ["correlation_id"]


async def test_8_correlation_id_relayed_as_null(py_server_factory: Any) -> None:
    """The relay keeps the key but sends correlation_id as null: as lost for the views."""

    def setup(sio: socketio.AsyncServer, app: web.Application) -> None:
        async def ingest(request: web.Request) -> web.Response:
            payload = dict((await request.json())["data"])
            payload["correlation_id"] = None
            await sio.emit("tool_event", payload)
            return web.Response(status=204)

        app.router.add_post("/api/events", ingest)

    server = await py_server_factory(setup)
    async with proxied(server.url) as rig, dashboards(rig.url) as [board]:
        assert await post_hook(rig.url) == 204
        payload = await board.receive("tool_event")
        assert payload["correlation_id"] is None
        flag = await rig.rec.flag(F.FIELDS_LOST)
    assert flag.get("fields") == ["correlation_id"]
    assert "null" in str(flag.get("cause"))


# 5: CONNECT with auth never answered.


async def test_5_connect_with_auth_unanswered() -> None:
    """A CONNECT carrying auth that the server never answers: connect_unanswered (auth)."""
    async with diagnostic(Faults(ignore_auth_connect=True)) as rig:
        board = Dashboard()
        with pytest.raises(socketio.exceptions.ConnectionError):
            await board.connect(rig.url, auth={"token": "dev-token"})
        flag = await rig.rec.flag(F.CONNECT_UNANSWERED)
        await board.close()
    assert flag.get("code") == "auth" and "token" in flag.get("cause")


async def test_5_healthy_connect_with_auth() -> None:
    """The same CONNECT with auth against the healthy server is answered: no flag."""
    async with diagnostic() as rig:
        board = Dashboard()
        await board.connect(rig.url, auth={"token": "dev-token"})
        await board.receive("dashboard:welcome")
        await board.close()
        await healthy_end(rig)


# 9: heartbeats.


async def raw_websocket_client(url: str, answer_pings: bool, pings: int) -> None:
    """A hand-written Engine.IO v4 WebSocket client: connects to /, answers pings or not."""
    ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url) as ws:
        opening = await ws.receive_str()
        assert opening.startswith("0{")
        await ws.send_str("40")
        seen = 0
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            if message.data == "2":
                seen += 1
                if answer_pings:
                    await ws.send_str("3")
                if seen >= pings:
                    await ws.send_str("41")
                    return


async def test_9_client_stops_answering_pings() -> None:
    """A client that never answers the server's pings: ping_timeout naming the client."""
    async with diagnostic(ping_interval=1, ping_timeout=1) as rig:
        await raw_websocket_client(rig.url, answer_pings=False, pings=99)
        flag = await rig.rec.flag(F.PING_TIMEOUT)
    assert flag.get("side") == "client" and flag.get("code") == "client_silent"


async def test_9_server_pings_later_than_promised() -> None:
    """A server pinging later than its handshake promises: ping_timeout naming the server."""
    async with diagnostic(Faults(ping_times_out=True)) as rig:
        board = Dashboard()
        await board.connect(rig.url)
        flag = await rig.rec.flag(F.PING_TIMEOUT)
        await board.close()
    assert flag.get("side") == "server"


async def test_9_healthy_heartbeats() -> None:
    """The same raw client answering every ping for two rounds: no flag."""
    async with diagnostic(ping_interval=1, ping_timeout=1) as rig:
        await raw_websocket_client(rig.url, answer_pings=True, pings=2)
        await healthy_end(rig)


# 10: server restarted under a polling client.


async def polling_client(url: str, restart: Callable[[], Awaitable[None]] | None) -> int:
    """A hand-written polling client: handshake, CONNECT, one poll, optional restart, poll."""
    base = f"{url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(base) as response:
            opening = await response.text()
        sid = opening[opening.index('"sid":"') + 7:].split('"', 1)[0]
        async with http.post(f"{base}&sid={sid}", data="40") as response:
            assert response.status == 200
        async with http.get(f"{base}&sid={sid}") as response:
            assert "40{" in await response.text()
        if restart is not None:
            await restart()
        async with http.get(f"{base}&sid={sid}") as response:
            await response.read()
            return response.status


async def test_10_server_restarted_under_a_polling_client() -> None:
    """The server restarts and answers 400 for the client's sid: unknown_sid, restarted."""
    server = DiagnosticServer(ping_interval=1, ping_timeout=1)
    await server.start()
    replacement: list[DiagnosticServer] = []

    async def restart() -> None:
        await server.stop()
        again = DiagnosticServer(port=server.port, ping_interval=1, ping_timeout=1)
        await again.start()
        replacement.append(again)

    try:
        async with proxied(server.url) as rig:
            assert await polling_client(rig.url, restart) == 400
            flag = await rig.rec.flag(F.UNKNOWN_SID)
    finally:
        for again in replacement:
            await again.stop()
    assert flag.get("code") == "restarted"


async def test_10_healthy_polling_client() -> None:
    """The same polling client without a restart: its second poll succeeds, no flag."""
    async with diagnostic(ping_interval=1, ping_timeout=1) as rig:
        assert await polling_client(rig.url, None) == 200
        await healthy_end(rig)


# 11: an ack that never comes (Node socket.io server).


async def emit_save(url: str) -> tuple[socketio.AsyncClient, asyncio.Future[Any]]:
    """Connect and emit ``save`` with an ack callback; the future holds the ack's arguments."""
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, wait_timeout=2)
    acked: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    await client.emit("save", {"doc": "notes.txt", "rev": 7},
                      callback=lambda *args: acked.set_result(args))
    return client, acked


async def test_11_ack_never_sent() -> None:
    """The server's handler never calls the ack callback: ack_missing (server)."""
    async with node_server(ACK_SERVER, "broken") as upstream, \
            proxied(upstream, profile=None) as rig:
        client, _ = await emit_save(rig.url)
        flag = await rig.rec.flag(F.ACK_MISSING)
        await client.disconnect()
    assert flag.get("code") == "server_no_ack" and flag.name == "save"


async def test_11_healthy_ack() -> None:
    """The same emit against the acknowledging server: paired, no flag."""
    async with node_server(ACK_SERVER, "healthy") as upstream, \
            proxied(upstream, profile=None) as rig:
        client, acked = await emit_save(rig.url)
        assert (await asyncio.wait_for(acked, TIMEOUT))[0]["ok"] is True
        await client.disconnect()
        summary = await healthy_end(rig)
    assert summary["acks"]["paired"] == 1


# 12: a broadcast that skips one of three dashboards.


def relay_server(skip_last: bool) -> Callable[[socketio.AsyncServer, web.Application], None]:
    """A claude-mpm-like relay; broken, it skips the most recently connected client."""

    def setup(sio: socketio.AsyncServer, app: web.Application) -> None:
        connected: list[str] = []

        @sio.event
        async def connect(sid: str, environ: dict[str, Any]) -> None:
            connected.append(sid)

        @sio.event
        async def disconnect(sid: str, *reason: Any) -> None:
            connected.remove(sid)

        async def ingest(request: web.Request) -> web.Response:
            body = await request.json()
            payload = dict(body["data"])
            for sid in connected[:-1] if skip_last else connected:
                await sio.emit("claude_event", payload, to=sid)
            return web.Response(status=204)

        app.router.add_post("/api/events", ingest)

    return setup


async def test_12_broadcast_reaches_two_of_three(py_server_factory: Any) -> None:
    """The relay skips one of three dashboards: partial_broadcast naming the third."""
    server = await py_server_factory(relay_server(skip_last=True))
    async with proxied(server.url) as rig, dashboards(rig.url, 3) as boards:
        assert await post_hook(rig.url) == 204
        for board in boards[:2]:
            await board.receive("claude_event")
        flag = await rig.rec.flag(F.PARTIAL_BROADCAST)
    assert flag.get("missed") == [boards[2].sid]
    assert sorted(flag.get("recipients")) == sorted(b.sid for b in boards[:2])


async def test_12_healthy_broadcast_reaches_all(py_server_factory: Any) -> None:
    """The same relay without the fault reaches all three: one broadcast record, no flag."""
    server = await py_server_factory(relay_server(skip_last=False))
    async with proxied(server.url) as rig, dashboards(rig.url, 3) as boards:
        assert await post_hook(rig.url) == 204
        for board in boards:
            await board.receive("claude_event")
        for board in boards:
            await board.close()
        await healthy_end(rig)
    [broadcast] = [r for r in rig.rec.records if r.event == model.BROADCAST]
    assert sorted(broadcast.get("recipients")) == sorted(b.sid for b in boards)
    assert broadcast.get("missed") == []
