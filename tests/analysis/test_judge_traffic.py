"""The judge on healthy traffic of real peers: no false flag, and each broken twin still flagged.

- A client that retries an event (socket.io-client's ``retries`` option, a loop over
  ``timeout(ms).emitWithAck``, a python-socketio ``call`` retried after its timeout) gets the
  server's answer once per attempt: not a ``duplicate``. A handler registered twice, answering
  one event twice, is.
- A plain Engine.IO app (Node ``engine.io`` + ``engine.io-client``, no Socket.IO) is recorded as
  ``eio.message`` on polling and across the WebSocket upgrade, without a ``decode_error``. A
  malformed packet in a Socket.IO session still is one.

Node peers are scripts next to this file; deadlines are 1 s and heartbeats fast, so a healthy
run is judged to the end within a couple of seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp import web

from sio_sniffer import model
from sio_sniffer.codec import EioItem, ErrorItem, SessionDecoder, SioItem
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F
from sio_sniffer.report.build import Report
from sio_sniffer.report.render import render_html
from sio_sniffer.sinks.jsonlog import JsonLogSink
from sio_sniffer.testing import Recorder
from sio_sniffer.web.live.state import ViewState
from tests.rigs import NODE_ENV, generic, judging, node_server

HERE = Path(__file__).resolve().parent
TIMEOUT = 10.0
DEADLINE = 1.0
PAYLOAD = {"q": "weather", "city": "Oslo"}


class NodeClient:
    """A Node client script given its options as JSON; reports on stdout as JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, script: str, **options: Any) -> NodeClient:
        process = await asyncio.create_subprocess_exec(
            "node", str(HERE / script), json.dumps(options), env=NODE_ENV,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return cls(process)

    async def done(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), TIMEOUT)
        assert line, "the node client exited without reporting"
        report: dict[str, Any] = json.loads(line)
        assert report["event"] == "done", report
        return report

    async def close(self) -> None:
        """End its stdin (a client holding its connection open closes then) and reap it."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            await asyncio.wait_for(self.process.wait(), TIMEOUT)
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()


def all_flags(rec: Recorder) -> list[tuple[Any, Any, Any]]:
    return [(r.get("flag"), r.get("code"), r.get("cause")) for r in rec.of(model.FLAG)]


def events(rec: Recorder, name: str, direction: str) -> list[Record]:
    return [r for r in rec.of(model.SIO_EVENT, name=name) if r.dir == direction]


async def past_deadline(rec: Recorder) -> None:
    """Until a record (heartbeats come every 300 ms or 1 s) is stamped past the deadline of the
    last event that came in, so everything it opened has been judged."""
    last_in = [r for r in rec.of(model.SIO_EVENT) if r.dir == "in"][-1]
    await rec.wait_for(lambda r: r.ts > last_in.ts + DEADLINE + 0.05, timeout=TIMEOUT)


# 6: a retried event answered once per attempt is not a duplicate.

NODE_RETRIES = [("retries", ["websocket"]), ("retries", ["polling"]),
                ("timeout", ["polling", "websocket"])]


@pytest.mark.parametrize(("how", "transports"), NODE_RETRIES)
async def test_node_retry_answered_per_attempt_is_not_a_duplicate(
        how: str, transports: list[str]) -> None:
    """The server holds the first ack past the client's ackTimeout: the client resends under a
    new ack id and the server sends ``result`` again, same payload. No flag at all."""
    async with node_server(HERE / "retry_server.js", "retry") as upstream, \
            judging(upstream, generic(DEADLINE)) as (sniffer, rec):
        client = await NodeClient.start("retry_client.js", url=sniffer.url,
                                        transports=transports, how=how, results=2)
        try:
            report = await client.done()
            await past_deadline(rec)
        finally:
            await client.close()
    assert report["ack"] == {"ok": True}
    fetches = events(rec, "fetch", "in")
    assert len(fetches) == 2 and fetches[0].ack_id != fetches[1].ack_id
    results = events(rec, "result", "out")
    assert [r.args for r in results] == [[PAYLOAD], [PAYLOAD]]
    assert fetches[0].ts < fetches[1].ts < results[1].ts
    assert all_flags(rec) == []


async def test_node_handler_registered_twice_is_a_duplicate() -> None:
    """The twin: one ``fetch``, two handlers, two identical ``result``s with nothing in
    between: a duplicate."""
    async with node_server(HERE / "retry_server.js", "twice") as upstream, \
            judging(upstream, generic(DEADLINE)) as (sniffer, rec):
        client = await NodeClient.start("retry_client.js", url=sniffer.url,
                                        transports=["websocket"], how="retries", results=2)
        try:
            await client.done()
            flag = await rec.wait_flag(F.DUPLICATE)
        finally:
            await client.close()
    assert len(events(rec, "fetch", "in")) == 1
    assert flag.get("code") == "same_client" and flag.name == "result"
    assert len(rec.flags(F.DUPLICATE)) == 1


def py_fetch_server(twice: bool) -> Any:
    """python-socketio: ``fetch`` answered with ``result`` (same payload); healthy, the first
    attempt's ack comes only once the retry has arrived; ``twice``, one event is answered with
    two ``result``s."""

    def setup(sio: socketio.AsyncServer, app: web.Application) -> None:
        retried = asyncio.Event()
        attempts = 0

        @sio.on("fetch")
        async def fetch(sid: str, data: Any) -> dict[str, Any]:
            nonlocal attempts
            attempts += 1
            await sio.emit("result", data, to=sid)
            if twice:
                await sio.emit("result", data, to=sid)
            elif attempts == 1:
                await retried.wait()  # slower than the client waits: it retries
            else:
                retried.set()
            return {"ok": True}

    return setup


@contextlib.asynccontextmanager
async def py_client(url: str) -> AsyncIterator[tuple[socketio.AsyncClient, asyncio.Queue[Any]]]:
    client = socketio.AsyncClient(reconnection=False)
    results: asyncio.Queue[Any] = asyncio.Queue()
    client.on("result", results.put)
    await client.connect(url, transports=["websocket"], wait_timeout=5)
    try:
        yield client, results
    finally:
        await client.disconnect()


async def test_python_call_retried_after_timeout_is_not_a_duplicate(
        py_server_factory: Any) -> None:
    """python-socketio's ``call`` times out and is called again: two answers, no flag."""
    server = await py_server_factory(py_fetch_server(twice=False))
    async with judging(server.url, generic(DEADLINE)) as (sniffer, rec), \
            py_client(sniffer.url) as (client, got):
        with pytest.raises(socketio.exceptions.TimeoutError):
            await client.call("fetch", PAYLOAD, timeout=0.2)
        assert await client.call("fetch", PAYLOAD, timeout=TIMEOUT) == {"ok": True}
        assert [await got.get(), await got.get()] == [PAYLOAD, PAYLOAD]
        await past_deadline(rec)
    assert len(events(rec, "result", "out")) == 2
    assert all_flags(rec) == []


async def test_python_event_answered_twice_is_a_duplicate(py_server_factory: Any) -> None:
    """The twin: one ``call``, two identical ``result``s: a duplicate."""
    server = await py_server_factory(py_fetch_server(twice=True))
    async with judging(server.url, generic(DEADLINE)) as (sniffer, rec), \
            py_client(sniffer.url) as (client, got):
        assert await client.call("fetch", PAYLOAD, timeout=TIMEOUT) == {"ok": True}
        assert [await got.get(), await got.get()] == [PAYLOAD, PAYLOAD]
        flag = await rec.wait_flag(F.DUPLICATE)
    assert flag.name == "result"


# 9: a plain Engine.IO app is not a stream of decode errors.

EIO_RUNS = [(["polling"], False), (["polling", "websocket"], True), (["websocket"], False)]


@pytest.mark.parametrize(("transports", "upgrade"), EIO_RUNS)
async def test_plain_engineio_records_messages_without_decode_errors(
        transports: list[str], upgrade: bool) -> None:
    """engine.io-client sends text, JSON text and binary to an echoing engine.io server (once
    more after the upgrade): every message is an eio.message, none a decode error."""
    async with node_server(HERE / "eio_server.js") as upstream, \
            judging(upstream, generic(DEADLINE), path="/engine.io/") as (sniffer, rec):
        client = await NodeClient.start("eio_client.js", url=sniffer.url, transports=transports,
                                        upgrade=upgrade)
        try:
            report = await client.done()
            await rec.wait(model.EIO_CLOSE)
        finally:
            await client.close()
    batches = 2 if upgrade else 1
    assert report["transports"] == (["polling", "websocket"] if upgrade else transports)
    sent = [r for r in rec.of(model.EIO_MESSAGE) if r.dir == "in"]
    echoed = [r for r in rec.of(model.EIO_MESSAGE) if r.dir == "out"]
    assert len(sent) == 3 * batches and len(echoed) == 1 + 3 * batches
    assert echoed[0].args == "welcome"
    assert sent[0].args == "hello" and sent[2].args == b"\x00\x01\x02\xff" and sent[2].size == 4
    assert {r.transport for r in sent} == ({"polling", "websocket"} if upgrade
                                           else set(transports))
    assert rec.of(model.DECODE_ERROR) == [] and rec.of(model.SIO_EVENT) == []
    assert all_flags(rec) == []
    shown_by_every_consumer(rec.records)


def shown_by_every_consumer(records: list[Record]) -> None:
    """The JSON log, the live page's state and the report take eio.message records."""
    out = io.BytesIO()
    log = JsonLogSink(out)
    view = ViewState(live=False)
    report = Report(files=[])
    for seq, record in enumerate(records):
        log(record)
        view.feed(record, seq)
        report.add(record)
    log.flush()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    binary = [line for line in lines if line["event"] == model.EIO_MESSAGE and line["size"] == 4]
    assert binary and binary[0]["args"]["_binary"] == 4
    assert view.snapshot()["clients"]
    assert "<html" in render_html(report).lower()


OPEN = b'0{"sid":"s1","upgrades":[],"pingInterval":300,"pingTimeout":1000,"maxPayload":1000}'


def test_the_first_message_decides_whether_a_session_is_socketio() -> None:
    """Seen from its OPEN, a session is Socket.IO only if it starts with a CONNECT: a plain
    message that parses as some other packet (``2["x"]``) does not make it one. Joined
    mid-session, its start unknown, a session stays Socket.IO (garbage there is reported)."""
    plain = SessionDecoder(socketio=None)
    plain.polling("out", OPEN)
    assert [type(i) for i in plain.polling("in", b'42["x"]')] == [EioItem]
    assert [type(i) for i in plain.websocket("in", b'40', True)] == [EioItem]
    sio = SessionDecoder(socketio=None)
    sio.polling("out", OPEN)
    assert [type(i) for i in sio.polling("in", b'40')] == [SioItem]
    assert [type(i) for i in sio.websocket("in", b'42["x"]', True)] == [SioItem]
    joined = SessionDecoder(socketio=None)
    assert [type(i) for i in joined.websocket("out", b'42["x"]', True)] == [SioItem]
    assert [type(i) for i in joined.websocket("out", b'4hello', True)] == [ErrorItem]


@pytest.mark.parametrize("transports", [["polling"], ["websocket"]])
async def test_malformed_socketio_packet_is_still_a_decode_error(transports: list[str]) -> None:
    """The twin: a Socket.IO session (it began with a CONNECT) whose client writes an EVENT with
    broken JSON gets its decode_error."""
    async with node_server(HERE / "retry_server.js", "retry") as upstream, \
            judging(upstream, generic(DEADLINE)) as (sniffer, rec):
        client = await NodeClient.start("bad_sio_client.js", url=sniffer.url,
                                        transports=transports)
        try:
            await client.done()
            flag = await rec.wait_flag(F.DECODE_ERROR)
        finally:
            await client.close()
    [error] = rec.of(model.DECODE_ERROR)
    assert error.dir == "in" and flag.get("code") == "socketio"
    assert rec.of(model.SIO_CONNECT_OK) and rec.of(model.EIO_MESSAGE) == []
