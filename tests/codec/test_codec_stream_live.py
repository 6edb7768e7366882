"""The session decoder over transcripts recorded from real python-socketio sessions: a
python-socketio server (aiohttp) and client on loopback, polling bodies recorded by a server
middleware, WebSocket messages by the client's aiohttp WebSocket; then the transcript is fed,
in the order it happened, to SessionDecoder."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from sio_sniffer.codec import EioItem, EioType, ErrorItem, Item, SessionDecoder, SioItem, SioType

Step = tuple[str, str, bytes, Any]  # (dir, "polling" | "ws-text" | "ws-binary", data, ctype)


def recorder(transcript: list[Step]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Server middleware: record each polling GET 200 response body (out). (POST bodies are
    recorded by the client: python-engineio reads the request stream itself.)"""

    @web.middleware
    async def record(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        polling = request.query.get("transport") == "polling"
        response = await handler(request)
        if (polling and request.method == "GET" and isinstance(response, web.Response)
                and response.status == 200):  # error answers are not payloads
            assert isinstance(response.body, bytes)
            transcript.append(("out", "polling", response.body, response.content_type))
        return response

    return record


def recording_session(transcript: list[Step]) -> aiohttp.ClientSession:
    """A client HTTP session that records polling POST bodies (in) and every WebSocket
    message sent and received."""

    async def on_chunk(session: aiohttp.ClientSession, ctx: Any,
                       params: aiohttp.TraceRequestChunkSentParams) -> None:
        if params.method == "POST" and "transport=polling" in str(params.url):
            transcript.append(("in", "polling", bytes(params.chunk), None))

    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(on_chunk)

    class RecordingWebSocket(aiohttp.ClientWebSocketResponse):
        async def send_str(self, data: str, compress: int | None = None) -> None:
            transcript.append(("in", "ws-text", data.encode(), None))
            await super().send_str(data, compress)

        async def send_bytes(self, data: bytes, compress: int | None = None) -> None:
            transcript.append(("in", "ws-binary", bytes(data), None))
            await super().send_bytes(data, compress)

        async def receive(self, timeout: float | None = None) -> Any:
            msg = await super().receive(timeout)
            if msg.type == aiohttp.WSMsgType.TEXT:
                transcript.append(("out", "ws-text", msg.data.encode(), None))
            elif msg.type == aiohttp.WSMsgType.BINARY:
                transcript.append(("out", "ws-binary", msg.data, None))
            return msg

    return aiohttp.ClientSession(ws_response_class=RecordingWebSocket, trace_configs=[trace])


def replay(transcript: list[Step]) -> tuple[SessionDecoder, list[Item]]:
    dec = SessionDecoder(eio=4)
    items: list[Item] = []
    for dir, kind, data, ctype in transcript:
        if kind == "polling":
            items.extend(dec.polling(dir, data, ctype))  # type: ignore[arg-type]
        else:
            items.extend(dec.websocket(dir, data, kind == "ws-text"))  # type: ignore[arg-type]
    items.extend(dec.close())
    return dec, items


def sio(items: list[Item], dir: str) -> list[SioItem]:
    return [i for i in items if isinstance(i, SioItem) and i.dir == dir]


async def test_full_session_polling_upgrade_binary(py_server_factory: Any) -> None:
    """A real session decodes without errors: handshake and open_info, the connect-handler's
    event, namespace CONNECTs with auth and their sid answers, the upgrade (upgraded after the
    client's 5), binary events and acks reassembled on both sides, disconnect."""
    transcript: list[Step] = []

    def setup(server: socketio.AsyncServer, app: web.Application) -> None:
        app.middlewares.append(recorder(transcript))

        @server.on("connect")
        async def connect(sid: str, environ: Any, auth: Any) -> None:
            await server.emit("welcome", {"you": sid}, to=sid)

        @server.on("connect", namespace="/admin")
        async def admin_connect(sid: str, environ: Any, auth: Any) -> None:
            if auth != {"token": "ok"}:
                raise ConnectionRefusedError("denied")

        @server.on("echo")
        async def echo(sid: str, data: Any) -> Any:
            return ["echoed", data]

        @server.on("bin", namespace="/admin")
        async def binary(sid: str, *args: Any) -> None:
            await server.emit("bin-back", {"got": list(args), "extra": b"\x07"}, to=sid,
                              namespace="/admin")

    server = await py_server_factory(setup)
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    http = recording_session(transcript)
    client = socketio.AsyncClient(http_session=http)
    client.on("welcome", lambda data: events.put_nowait(("welcome", data)))
    client.on("bin-back", lambda data: events.put_nowait(("bin-back", data)),
              namespace="/admin")
    try:
        await client.connect(server.url, namespaces=["/", "/admin"], auth={"token": "ok"},
                             transports=["polling", "websocket"], wait_timeout=10)
        assert client.transport() == "websocket"
        assert await asyncio.wait_for(events.get(), 10) == ("welcome", {"you": client.get_sid()})
        answer = await client.call("echo", {"blob": b"\x00\x01", "n": 1}, timeout=10)
        assert answer == ["echoed", {"blob": b"\x00\x01", "n": 1}]
        await client.emit("bin", (b"\xff", {"x": [b"\x02"]}), namespace="/admin")
        got = await asyncio.wait_for(events.get(), 10)
        assert got[0] == "bin-back"
        eio_sid = client.eio.sid
        sio_sids = {"/": client.get_sid("/"), "/admin": client.get_sid("/admin")}
        await client.disconnect()
    finally:
        await http.close()

    dec, items = replay(transcript)
    assert [i for i in items if isinstance(i, ErrorItem)] == []
    assert dec.sid == eio_sid
    assert dec.open_info["upgrades"] == ["websocket"]
    assert {"pingInterval", "pingTimeout", "maxPayload"} <= set(dec.open_info)
    assert dec.upgraded
    assert isinstance(items[0], EioItem)
    assert items[0].packet.type == EioType.OPEN and items[0].transport == "polling"

    sent = sio(items, "in")
    connects = [i.packet for i in sent if i.packet.type == SioType.CONNECT]
    assert {(p.namespace, str(p.data)) for p in connects} == {
        ("/", str({"token": "ok"})), ("/admin", str({"token": "ok"}))}
    [call] = [i.packet for i in sent if i.packet.name == "echo"]
    assert call.type == SioType.BINARY_EVENT and call.id is not None
    assert call.args == [{"blob": b"\x00\x01", "n": 1}]
    [emitted] = [i.packet for i in sent if i.packet.name == "bin"]
    assert (emitted.namespace, emitted.args) == ("/admin", [b"\xff", {"x": [b"\x02"]}])
    assert any(i.packet.type == SioType.DISCONNECT for i in sent)

    received = sio(items, "out")
    answers = {i.packet.namespace: i.packet.data for i in received
               if i.packet.type == SioType.CONNECT}
    assert answers == {ns: {"sid": sid} for ns, sid in sio_sids.items()}
    [welcome] = [i for i in received if i.packet.name == "welcome"]
    assert welcome.packet.args == [{"you": sio_sids["/"]}]
    [ack] = [i.packet for i in received if i.packet.id == call.id]
    assert ack.type == SioType.BINARY_ACK
    assert ack.args == [["echoed", {"blob": b"\x00\x01", "n": 1}]]
    [back] = [i for i in received if i.packet.name == "bin-back"]
    assert back.transport == "websocket"
    assert back.packet.args == [{"got": [b"\xff", {"x": [b"\x02"]}], "extra": b"\x07"}]
    kinds = [(i.dir, i.transport, i.packet.type, i.packet.data) for i in items
             if isinstance(i, EioItem)]
    assert ("in", "websocket", EioType.PING, "probe") in kinds
    assert ("out", "websocket", EioType.PONG, "probe") in kinds
    assert ("in", "websocket", EioType.UPGRADE, "") in kinds


async def test_refused_namespace_string_connect_error(py_server_factory: Any) -> None:
    """python-socketio refuses an unknown namespace with a bare string CONNECT_ERROR over
    polling; it decodes as a CONNECT_ERROR carrying that string, not as an error."""
    transcript: list[Step] = []

    def setup(server: socketio.AsyncServer, app: web.Application) -> None:
        app.middlewares.append(recorder(transcript))

    # A short ping interval ends the client's pending long-poll quickly when it gives up.
    server = await py_server_factory(setup, ping_interval=1, ping_timeout=1)
    http = recording_session(transcript)
    client = socketio.AsyncClient(http_session=http)
    refused: asyncio.Queue[Any] = asyncio.Queue()
    client.on("connect_error", lambda data: refused.put_nowait(data), namespace="/nope")
    try:
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(server.url, namespaces=["/nope"], transports=["polling"],
                                 wait_timeout=10)
        reason = await asyncio.wait_for(refused.get(), 10)
    finally:
        await client.disconnect()
        await http.close()

    _, items = replay(transcript)
    assert [i for i in items if isinstance(i, ErrorItem)] == []
    [error] = [i.packet for i in sio(items, "out") if i.packet.type == SioType.CONNECT_ERROR]
    assert error.namespace == "/nope"
    assert isinstance(error.data, str) and error.data == reason
