"""Faults of the peers, each with real peers through the Sniffer: the sniffer keeps relaying,
says what happened, and frees what it held."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from typing import Any

import aiohttp
import pytest
import socketio

from sio_sniffer.analysis import AnalysisConfig
from sio_sniffer.diagnostics.server import DiagnosticServer, Faults
from sio_sniffer.model.tap import HttpRequest, HttpResponse
from tests.conftest import free_port
from tests.reliability.rel_peers import HangingFront, RawWs, host_port, node, sniffing
from tests.transport.relay_peers import Tap


async def _client(url: str, transports: list[str], **kwargs: Any) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False, **kwargs)
    await client.connect(url, transports=transports, wait_timeout=10)
    return client


async def test_upstream_not_running_then_started() -> None:
    """With no upstream the client's connect fails with the sniffer's 502 and an upstream_error
    record; once a server listens on that port the same sniffer relays a working session."""
    port = free_port()
    async with sniffing(f"http://127.0.0.1:{port}") as (sniffer, records):
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(sniffer.url, transports=["polling"], wait_timeout=5)
        error = await records.wait("upstream_error")
        assert "refused" in error.get("reason") and str(port) in error.get("url")
        async with node(port=port):
            client = await _client(sniffer.url, ["polling", "websocket"])
            assert await client.call("echo", "after", timeout=10) == "after"
            await client.disconnect()


@pytest.mark.parametrize("transports", [["websocket"], ["polling"]])
async def test_upstream_killed_mid_session(transports: list[str]) -> None:
    """SIGKILL of the server: the client sees the disconnect promptly and the records say the
    server closed the connection, after the kill, and that the Engine.IO session ended."""
    async with node() as (url, proc), sniffing(url) as (sniffer, records):
        client = socketio.AsyncClient(reconnection=False)
        gone = asyncio.Event()
        client.on("disconnect", lambda *reason: gone.set())
        await client.connect(sniffer.url, transports=transports, wait_timeout=10)
        assert await client.call("echo", 1, timeout=10) == 1
        sid = client.eio.sid
        before = {r.conn for r in records.of("conn.open")}
        killed_at = time.time()
        proc.kill()
        await proc.proc.wait()
        await asyncio.wait_for(gone.wait(), 5)
        for conn in before:
            closed = await records.wait("conn.close", conn=conn)
            assert closed.get("by") == "server" and killed_at <= closed.ts <= time.time()
        if transports == ["websocket"]:
            ended = await records.wait("eio.close", eio_sid=sid)
            assert ended.get("reason") == "transport closed by server"


async def test_upstream_restarted_under_a_polling_client() -> None:
    """A server restarted on the same port forgets the polling client's session: its next poll
    is answered 400, analysis flags unknown_sid (restarted), and new sessions work."""
    port = free_port()
    async with node(port=port) as (url, proc), \
            sniffing(url, AnalysisConfig(deadline=0.3)) as (sniffer, records):
        base = f"{sniffer.url}/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as http:
            async with http.get(base) as resp:
                sid = json.loads((await resp.text())[1:])["sid"]
            async with http.post(f"{base}&sid={sid}", data="40") as resp:
                assert resp.status == 200
            async with http.get(f"{base}&sid={sid}") as resp:
                assert (await resp.text()).startswith("40")
            proc.kill()
            await proc.proc.wait()
            async with node(port=port):
                async with http.get(f"{base}&sid={sid}") as resp:
                    assert resp.status == 400
                flag = await records.wait_flag("unknown_sid")
                assert flag.eio_sid == sid and flag.get("code") == "restarted"
                client = await _client(sniffer.url, ["polling", "websocket"])
                assert await client.call("echo", "new", timeout=10) == "new"
                await client.disconnect()


async def test_upstream_accepts_and_never_answers() -> None:
    """An upstream that accepts TCP and stays silent: the proxy adds no timeout (the client's
    own timeout ends its wait and the connection lives until the client drops it), and
    meanwhile the sniffer serves another client normally."""
    async with node() as (url, _proc):
        front = HangingFront(url, hang=1)
        await front.start()
        try:
            async with sniffing(front.url) as (sniffer, records):
                reader, writer = await asyncio.open_connection(*host_port(sniffer.url))
                writer.write(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n"
                             b"Host: x\r\n\r\n")
                hung = await records.wait("conn.open")
                other = await _client(sniffer.url, ["polling", "websocket"])
                assert await other.call("echo", "served", timeout=10) == "served"
                await other.disconnect()
                # the client's own timeout: 1.5 s without an answer
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(reader.read(1), 1.5)
                assert not records.of("conn.close", conn=hung.conn)
                assert sniffer.open_connections == 1
                # a FIN alone would be passed on as a half-close (the silent server still owes
                # its answer); a client that drops the connection ends it on both legs
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                closed = await records.wait("conn.close", conn=hung.conn)
                assert closed.get("by") == "client" and closed.ts - hung.ts >= 1.5
        finally:
            await front.stop()


async def test_slow_engineio_upstream() -> None:
    """A server that takes 0.7 s over every Engine.IO request still gets a working session
    through the sniffer; the records show the wait on the server side."""
    async with node(delayMs=700) as (url, _proc), sniffing(url) as (sniffer, records):
        client = await _client(sniffer.url, ["polling"])
        assert await client.call("echo", "slow", timeout=10) == "slow"
        opened = await records.wait("eio.open")
        conn = await records.wait("conn.open", conn=opened.conn)
        assert opened.ts - conn.ts >= 0.7
        await client.disconnect()


async def test_slow_ingest_is_flagged() -> None:
    """A hook POST answered after 0.5 s reaches the client with the server's 204 and the
    sniffer flags slow_ingest with the measured duration."""
    server = DiagnosticServer(faults=Faults(slow_ingest_ms=500))
    await server.start()
    try:
        async with sniffing(server.url, AnalysisConfig(slow_ingest_ms=300)) as (sniffer, records):
            async with aiohttp.ClientSession() as http, http.post(
                    f"{sniffer.url}/api/events",
                    json={"type": "hook", "subtype": "pre_tool", "data": {}}) as resp:
                assert resp.status == 204
            flag = await records.wait_flag("slow_ingest")
            assert flag.get("duration_ms") >= 500
    finally:
        await server.stop()


async def test_client_vanishes_without_close() -> None:
    """A client that stops reading and answering pings: the server's heartbeat ends the session
    (flagged ping_timeout, the server's close passed on), and once the client's socket is gone
    the sniffer records the close by the server and forgets the connection and the session."""
    async with node(pingInterval=300, pingTimeout=300, closeTimeoutMs=300) as (url, proc), \
            sniffing(url) as (sniffer, records):
        ws = await RawWs.connect(sniffer.url)
        open_packet = await ws.text_frame()
        sid = json.loads(open_packet[1:])["sid"]
        ws.text("40")
        assert (await ws.text_frame()).startswith("40")
        # from here the client neither reads nor answers: its socket just sits there
        ended = await proc.expect("disconnect")
        assert ended["reason"] == "ping timeout"
        flag = await records.wait_flag("ping_timeout")
        assert flag.eio_sid == sid and flag.get("code") == "client_silent"
        assert (await records.wait("ws.close", eio_sid=sid)).dir == "out"
        assert sid not in sniffer.analyzer.sessions.open
        assert records.of("eio.ping", eio_sid=sid) and not records.of("eio.pong", eio_sid=sid)
        # what the server sent while the client was away waits in the client's socket: its
        # pings, the close frame and the end of the stream, nothing added by the proxy
        leftover = await ws.closed()
        assert leftover.endswith(b"\x88\x00")
        # the vanished client's host finally drops the connection
        ws.writer.transport.abort()
        closed = await records.wait("conn.close", eio_sid=sid)
        assert closed.get("by") == "server"
        await records.wait("eio.close", eio_sid=sid)
        assert sniffer.open_connections == 0
        assert not sniffer.observer.tracks(closed.conn)
        assert not sniffer.observer.tracks(sid)


async def test_thousand_clients_at_once() -> None:
    """1,000 WebSocket clients connect at the same moment through one sniffer: every one gets
    its Socket.IO connect answered, the sniffer records each, and holds nothing afterwards."""
    n = 1000
    async with node() as (url, _proc), sniffing(url) as (sniffer, records):
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0)) as http:

            async def one() -> aiohttp.ClientWebSocketResponse:
                ws = await http.ws_connect(
                    f"{sniffer.url}/socket.io/?EIO=4&transport=websocket", autoping=False)
                assert (await ws.receive_str(timeout=60)).startswith("0")
                await ws.send_str("40")
                assert (await ws.receive_str(timeout=60)).startswith("40")
                return ws

            sockets = await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), 60)
            for ws in sockets:
                await ws.close()
        assert len(await records.wait_count("conn.close", n, timeout=30)) == n
        assert len(records.of("sio.connect_ok")) == n
        assert len({r.eio_sid for r in records.of("eio.open")}) == n
        assert sniffer.open_connections == 0
        assert sniffer.observer.tracked()["connections"] == 0


async def test_ten_megabyte_binary_attachment() -> None:
    """A 10 MB binary attachment goes through whole (the server acks its exact length) and the
    sniffer records the event with the bytes and their size."""
    data = bytes(range(256)) * (10 * 1024 * 1024 // 256)
    async with node() as (url, _proc), sniffing(url) as (sniffer, records):
        client = await _client(sniffer.url, ["websocket"])
        assert await client.call("bin", data, timeout=30) == len(data)
        event = await records.wait("sio.event", name="bin")
        assert event.args == [data] and event.get("attachments") == 1
        await client.disconnect()


@pytest.mark.parametrize("server", ["node", "python"])
async def test_polling_body_over_max_payload(server: str, py_server_factory: Any) -> None:
    """A polling POST larger than the server's maxPayload: the server's refusal reaches the
    client byte for byte and the sniffer flags payload_too_large."""
    body = b"4" + b'2["big","' + b"x" * 5000 + b'"]'
    async with contextlib.AsyncExitStack() as stack:
        if server == "node":
            url, _proc = await stack.enter_async_context(node(maxHttpBufferSize=1000))
        else:
            url = (await py_server_factory(max_http_buffer_size=1000)).url
        tap = Tap()
        sniffer, records = await stack.enter_async_context(sniffing(url, tap=[tap]))
        base = "/socket.io/?EIO=4&transport=polling"
        async with aiohttp.ClientSession() as http:
            async with http.get(sniffer.url + base) as resp:
                sid = json.loads((await resp.text())[1:])["sid"]
            async with http.post(f"{sniffer.url}{base}&sid={sid}", data="40") as resp:
                assert resp.status == 200
            async with http.get(f"{sniffer.url}{base}&sid={sid}") as resp:
                assert (await resp.text()).startswith("40")

            async def poll() -> int:
                async with http.get(f"{sniffer.url}{base}&sid={sid}") as resp:
                    await resp.read()
                    return resp.status

            # as a real polling client does, a GET is pending while the POST goes out
            def is_poll(e: Any) -> bool:
                return isinstance(e, HttpRequest) and e.method == "GET" and sid in e.target

            polls = tap.of(HttpRequest)
            pending = asyncio.create_task(poll())
            await tap.wait_for(lambda e: is_poll(e) and e not in polls)
            answer = await _raw_post(sniffer.url, f"{base}&sid={sid}", body)
            await asyncio.wait_for(pending, 10)
        record = await records.wait("http", status=answer.status)
        assert record.get("req_bytes") == len(body) and answer.status >= 400
        response = next(e for e in tap.events if isinstance(e, HttpResponse)
                        and len(e.request.body) == len(body))
        assert response.status == answer.status
        assert answer.body == response.body
        flag = await records.wait_flag("payload_too_large", timeout=3)
        assert flag.eio_sid == sid


class _Answer:
    def __init__(self, head: bytes, body: bytes) -> None:
        self.head = head
        self.body = body
        self.status = int(head.split(b" ", 2)[1])


async def _raw_post(url: str, target: str, body: bytes) -> _Answer:
    """POST exactly ``body`` on a fresh connection; the answer as it arrived."""
    host, port = host_port(url)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                 f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
                 f"\r\n".encode() + body)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    answer = _Answer(head, await asyncio.wait_for(reader.readexactly(length), 10))
    writer.close()
    return answer
