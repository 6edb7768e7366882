"""The Sniffer in front of a real python-socketio server: what the JSON log says."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from sio_sniffer.model import fingerprint
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from sio_sniffer.sinks.jsonlog import JsonLogSink, LogFilter

TOKEN = "s3cret-token-value"


def _setup(sio: socketio.AsyncServer, app: web.Application) -> None:
    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> bool:
        return isinstance(auth, dict) and auth.get("token") == TOKEN

    @sio.on("echo")
    async def echo(sid: str, data: Any) -> Any:
        await sio.emit("echoed", data, to=sid)
        return {"ok": True, "got": data}

    @sio.on("*", namespace="/custom")
    async def custom_any(event: str, sid: str, data: Any) -> None:
        await sio.emit("custom_reply", {"n": data}, to=sid, namespace="/custom")

    @sio.on("connect", namespace="/custom")
    async def custom_connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        return None


class Log:
    """The JSON log as a list of dicts, read after the sniffer stopped."""

    def __init__(self) -> None:
        self.stream = io.BytesIO()
        self.sink = JsonLogSink(self.stream, log_filter=LogFilter(verbose=False))

    def lines(self) -> list[dict[str, Any]]:
        self.sink.flush()
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def of(self, kind: str, **match: Any) -> list[dict[str, Any]]:
        return [r for r in self.lines()
                if r["event"] == kind and all(r.get(k) == v for k, v in match.items())]


async def _session(url: str, transports: list[str]) -> dict[str, Any]:
    client = socketio.AsyncClient(reconnection=False)
    got: dict[str, Any] = {}
    echoed: asyncio.Queue[Any] = asyncio.Queue()
    custom: asyncio.Queue[Any] = asyncio.Queue()
    client.on("echoed", echoed.put)
    client.on("custom_reply", custom.put, namespace="/custom")
    await client.connect(url, transports=transports, auth={"token": TOKEN},
                         namespaces=["/", "/custom"])
    got["ack"] = await client.call("echo", {"text": "hi", "blob": b"\x00\x01\xff"})
    got["echoed"] = await asyncio.wait_for(echoed.get(), 5)
    await client.emit("anything", 7, namespace="/custom")
    got["custom"] = await asyncio.wait_for(custom.get(), 5)
    got["transport"] = client.transport()
    await client.disconnect()
    return got


@pytest.mark.parametrize("transports", [["polling"], ["websocket"], ["polling", "websocket"]])
async def test_log_records_a_whole_session(py_server_factory: Any,
                                           transports: list[str]) -> None:
    """Every step of a session (open, upgrade, connect with auth, events, acks, binary,
    disconnect) is a JSON line with the right fields, and the token appears only as a
    fingerprint."""
    server = await py_server_factory(_setup)
    direct = await _session(server.url, transports)
    log = Log()
    sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=server.url),
                      sinks=[log.sink])
    await sniffer.start()
    try:
        through = await _session(sniffer.url, transports)
    finally:
        await sniffer.stop()
    assert through == direct

    text = log.stream.getvalue().decode()
    assert TOKEN not in text
    opens = log.of("eio.open")
    assert len(opens) == 1
    assert opens[0]["ping_interval"] == 1000 and opens[0]["transport"] == transports[0]
    sid = opens[0]["eio_sid"]
    if transports == ["polling", "websocket"]:
        assert log.of("eio.upgrade", eio_sid=sid)
    connects = log.of("sio.connect", nsp="/")
    assert connects and connects[0]["dir"] == "in"
    assert connects[0]["auth"] == {"token": fingerprint(TOKEN)}
    oks = log.of("sio.connect_ok")
    assert {r["nsp"] for r in oks} == {"/", "/custom"} and all(r["sio_sid"] for r in oks)
    echo_in = log.of("sio.event", name="echo", dir="in")
    assert len(echo_in) == 1 and echo_in[0]["ack_id"] is not None
    assert echo_in[0]["args"][0]["text"] == "hi"
    assert echo_in[0]["args"][0]["blob"]["_binary"] == 3
    acks = log.of("sio.ack", dir="out", ack_id=echo_in[0]["ack_id"])
    assert acks and acks[0]["args"][0]["ok"] is True
    out = log.of("sio.event", name="echoed", dir="out")
    assert out and out[0]["eio_sid"] == sid and out[0]["sio_sid"]
    assert log.of("sio.event", name="custom_reply", nsp="/custom", dir="out")
    [close] = log.of("eio.close", eio_sid=sid)
    # disconnect(): Engine.IO's close packet on polling, the WebSocket's close frame on websocket
    assert close["reason"] in ("client sent close", "client closed the WebSocket")
    assert not log.of("decode_error")
    assert all(r["ts"].endswith("Z") for r in log.lines())


async def test_connect_error_and_namespace_refusal_are_logged(py_server_factory: Any) -> None:
    """A refused CONNECT is logged with the server's message, for a bad token and for an
    unknown namespace."""
    server = await py_server_factory(_setup)
    log = Log()
    sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=server.url),
                      sinks=[log.sink])
    await sniffer.start()
    try:
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(sniffer.url, auth={"token": "wrong"}, transports=["websocket"],
                                 wait_timeout=5)
        client2 = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client2.connect(sniffer.url, auth={"token": TOKEN}, namespaces=["/nope"],
                                  transports=["polling"], wait_timeout=5)
    finally:
        await sniffer.stop()
    errors = log.of("sio.connect_error")
    assert {e["nsp"] for e in errors} == {"/", "/nope"}
    assert all(e["message"] for e in errors)
    fps = {c["auth"]["token"] for c in log.of("sio.connect")}
    assert len(fps) == 2  # different tokens, different fingerprints


async def test_filters_keep_only_what_was_asked(py_server_factory: Any) -> None:
    """--nsp/--name/--dir filter the log lines, not the traffic."""
    server = await py_server_factory(_setup)
    stream = io.BytesIO()
    sink = JsonLogSink(stream, log_filter=LogFilter(nsp=("/custom",), name=("custom_*",),
                                                    dir="out"))
    sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=server.url), sinks=[sink])
    await sniffer.start()
    try:
        got = await _session(sniffer.url, ["websocket"])
    finally:
        await sniffer.stop()
    assert got["custom"] == {"n": 7}
    sink.flush()
    events = [json.loads(x) for x in stream.getvalue().splitlines()]
    named = [e for e in events if e["event"] == "sio.event"]
    assert [e["name"] for e in named] == ["custom_reply"]
    assert all(e.get("nsp") in (None, "/custom") for e in events)
    assert all(e.get("dir") in (None, "out") for e in events)


async def test_a_websocket_the_client_closes_is_closed_by_the_client(
        py_server_factory: Any) -> None:
    """A client that ends its WebSocket session with a close frame alone (as a browser closing
    its tab does) closed the session, even though the server then drops the TCP connection
    first: eio.close says the client closed it."""
    server = await py_server_factory()
    log = Log()
    sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=server.url),
                      sinks=[log.sink])
    await sniffer.start()
    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(
                sniffer.url + "/socket.io/?EIO=4&transport=websocket") as ws:
            assert (await ws.receive_str()).startswith("0")  # Engine.IO open
            await ws.send_str("40")
            assert (await ws.receive_str()).startswith("40")  # connected on /
            await ws.close()
    finally:
        await sniffer.stop()
    [close] = log.of("eio.close")
    assert close["reason"] == "client closed the WebSocket"
    assert log.of("ws.close")[0]["dir"] == "in"  # the client's frame came first
