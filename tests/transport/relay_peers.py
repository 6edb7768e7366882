"""Real peers for the relay tests: Node and python-socketio servers and clients with one script.

Both languages run the same scenario (tests/node/peer_server.js and peer_client.js are the Node
halves) so a transcript from any client against any server can be compared with another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

from sio_sniffer.model.tap import TapEvent, WsMessage
from sio_sniffer.transport.relay import Relay
from tests.paths import NODE_DIR

AUTH = {"token": "s3cret", "n": 1}
PAYLOAD = ("a", 1, {"deep": [True, None, "é€😀"]})
NAMESPACES = ("/", "/admin")


def norm(value: Any) -> Any:
    """The JSON-comparable form both client scripts produce (binary as ``{"$bin": hex}``)."""
    if isinstance(value, (bytes, bytearray)):
        return {"$bin": bytes(value).hex()}
    if isinstance(value, (list, tuple)):
        return [norm(v) for v in value]
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    return value


class NodeProcess:
    """A Node (or Python) script started with one JSON argument; stdout read as JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, script: str, options: dict[str, Any]) -> NodeProcess:
        env = dict(os.environ, NODE_PATH=str(NODE_DIR / "node_modules"))
        proc = await asyncio.create_subprocess_exec(
            "node", str(NODE_DIR / script), json.dumps(options),
            stdout=asyncio.subprocess.PIPE, env=env, cwd=NODE_DIR,
        )
        return cls(proc)

    @classmethod
    async def start_python(cls, script: str, options: dict[str, Any]) -> NodeProcess:
        """The same for a Python script next to this file (it gets a stdin pipe too)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(Path(__file__).with_name(script)), json.dumps(options),
            stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            item = json.loads(line)
            self.seen.append(item)
            await self.lines.put(item)

    async def expect(self, event: str, timeout: float = 20) -> dict[str, Any]:
        """The next line whose ``event`` is ``event`` (earlier other lines stay in ``seen``)."""
        return await asyncio.wait_for(self._expect(event), timeout)

    async def _expect(self, event: str) -> dict[str, Any]:
        while True:
            item = await self.lines.get()
            if item.get("event") == "error":
                raise AssertionError(f"node peer failed: {item['message']}")
            if item.get("event") == event:
                return item

    async def wait(self, timeout: float = 20) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.wait_for(self._reader, timeout)
        return code

    def kill(self) -> None:
        if self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGKILL)


@asynccontextmanager
async def node_server(**options: Any) -> AsyncIterator[tuple[str, NodeProcess]]:
    """peer_server.js on a free port: yields its URL and the process."""
    proc = await NodeProcess.start("peer_server.js", options)
    try:
        listening = await proc.expect("listening")
        yield f"http://127.0.0.1:{listening['port']}", proc
    finally:
        proc.kill()
        await proc.proc.wait()


@asynccontextmanager
async def py_server(
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[tuple[str, socketio.AsyncServer]]:
    """The Python twin of peer_server.js on a free port: yields its URL and the server.

    aiohttp cancels a handler whose client went away (``handler_cancellation``), so a long-poll
    left by a client that exited ends at once instead of holding shutdown for a ping period.
    """
    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)
    setup_py_server(sio)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}", sio
    finally:
        await runner.cleanup()


def setup_py_server(sio: socketio.AsyncServer) -> None:
    """The Python twin of peer_server.js."""
    for nsp in NAMESPACES:
        _register(sio, nsp)


def _register(sio: socketio.AsyncServer, nsp: str) -> None:
    async def connect(sid: str, environ: Any, auth: Any = None) -> None:
        if isinstance(auth, dict) and auth.get("token") == "bad":
            raise socketio.exceptions.ConnectionRefusedError("bad token")
        await sio.emit("welcome", {"nsp": nsp, "auth": auth or {}}, to=sid, namespace=nsp)

    async def echo(sid: str, *args: Any) -> Any:
        return {"echo": list(args)}

    async def binary(sid: str, data: bytes) -> str:
        await sio.emit("bin_back", (data[::-1], {"nested": [data]}), to=sid, namespace=nsp)
        return f"got {len(data)}"

    async def ask(sid: str, question: Any) -> None:
        async def answered(answer: Any) -> None:
            await sio.emit("answer_was", answer, to=sid, namespace=nsp)

        await sio.emit("question", question, to=sid, namespace=nsp, callback=answered)

    async def burst(sid: str, n: int, pace: Any = None) -> None:
        for i in range(n):
            await sio.emit("tick", i, to=sid, namespace=nsp)
        await sio.emit("burst_done", n, to=sid, namespace=nsp)

    for name, handler in (("connect", connect), ("echo", echo), ("bin", binary), ("ask", ask),
                          ("burst", burst)):
        sio.on(name, handler, namespace=nsp)


async def py_full(url: str, transports: list[str]) -> dict[str, Any]:
    """The Python twin of peer_client.js's "full" scenario: the transcript it received."""
    client = socketio.AsyncClient(reconnection=False)
    transcript: dict[str, Any] = {}
    inbox: dict[str, asyncio.Queue[Any]] = {}

    def box(key: str) -> asyncio.Queue[Any]:
        return inbox.setdefault(key, asyncio.Queue())

    for nsp in NAMESPACES:
        def bind(nsp: str) -> None:
            async def welcome(data: Any) -> None:
                await box(f"welcome {nsp}").put(data)

            async def bin_back(*args: Any) -> None:
                await box(f"bin_back {nsp}").put(list(args))

            async def answer_was(*args: Any) -> None:
                await box(f"answer_was {nsp}").put(list(args))

            async def question(q: Any) -> Any:
                return {"answer": q}

            for name, handler in (("welcome", welcome), ("bin_back", bin_back),
                                  ("answer_was", answer_was), ("question", question)):
                client.on(name, handler, namespace=nsp)
        bind(nsp)

    await client.connect(url, namespaces=list(NAMESPACES), auth=AUTH, transports=transports,
                         wait_timeout=10)
    await asyncio.wait_for(_py_steps(client, url, transports, transcript, box), 20)
    return transcript


async def _py_steps(client: socketio.AsyncClient, url: str, transports: list[str],
                    transcript: dict[str, Any],
                    box: Callable[[str], asyncio.Queue[Any]]) -> None:
    loop = asyncio.get_running_loop()
    for nsp in NAMESPACES:
        transcript[f"welcome {nsp}"] = norm(await box(f"welcome {nsp}").get())
    for nsp in NAMESPACES:
        transcript[f"echo {nsp}"] = norm(await client.call("echo", PAYLOAD, namespace=nsp))
        transcript[f"bin ack {nsp}"] = norm(
            await client.call("bin", bytes([0, 1, 2, 255, 254]), namespace=nsp))
        transcript[f"bin_back {nsp}"] = norm(await box(f"bin_back {nsp}").get())
        await client.emit("ask", {"q": nsp}, namespace=nsp)
        transcript[f"answer_was {nsp}"] = norm(await box(f"answer_was {nsp}").get())
    transcript["big echo"] = norm(await client.call("echo", "x" * 20000))
    transcript["transport"] = client.transport()

    refused = socketio.AsyncClient(reconnection=False)
    error: asyncio.Future[Any] = loop.create_future()
    def refusal(data: Any) -> None:
        if not error.done():
            error.set_result(data)

    refused.on("connect_error", refusal, namespace="/admin")
    with contextlib.suppress(socketio.exceptions.ConnectionError):
        await refused.connect(url, namespaces=["/admin"], auth={"token": "bad"},
                              transports=transports, wait_timeout=10)
    data = await error
    transcript["connect_error /admin"] = data.get("message") if isinstance(data, dict) else data
    await refused.disconnect()
    await client.disconnect()


async def node_full(url: str, transports: list[str], **options: Any) -> dict[str, Any]:
    """Run peer_client.js's "full" scenario; its output line (transcript, frames sent/received)."""
    proc = await NodeProcess.start(
        "peer_client.js", {"url": url, "transports": transports, "scenario": "full", **options})
    try:
        result = await proc.expect("transcript")
        assert await proc.wait() == 0
        return result
    finally:
        proc.kill()


class Tap:
    """Collects the relay's events and lets a test await one that matches."""

    def __init__(self) -> None:
        self.events: list[TapEvent] = []
        self._waiters: list[tuple[Callable[[TapEvent], bool], asyncio.Future[TapEvent]]] = []

    def __call__(self, event: TapEvent) -> None:
        self.events.append(event)
        for check, fut in list(self._waiters):
            if not fut.done() and check(event):
                fut.set_result(event)
                self._waiters.remove((check, fut))

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait_for(self, check: Callable[[TapEvent], bool], timeout: float = 10) -> TapEvent:
        for event in self.events:
            if check(event):
                return event
        fut: asyncio.Future[TapEvent] = asyncio.get_running_loop().create_future()
        self._waiters.append((check, fut))
        return await asyncio.wait_for(fut, timeout)

    async def wait_new(self, check: Callable[[TapEvent], bool], timeout: float = 10) -> TapEvent:
        """The next matching event from now on (events seen before are ignored)."""
        fut: asyncio.Future[TapEvent] = asyncio.get_running_loop().create_future()
        self._waiters.append((check, fut))
        return await asyncio.wait_for(fut, timeout)


def ws_text(event: TapEvent, dir: str) -> str | None:
    """The text payload of a WsMessage in ``dir``, else None."""
    if isinstance(event, WsMessage) and event.dir == dir and event.opcode == 1:
        return event.payload.decode()
    return None


@asynccontextmanager
async def relay_to(upstream: str, tap: Tap, **kwargs: Any) -> AsyncIterator[Relay]:
    relay = Relay(upstream, [("127.0.0.1", 0)], tap, **kwargs)
    await relay.start()
    try:
        yield relay
    finally:
        await relay.stop()


def relay_url(relay: Relay, scheme: str = "http") -> str:
    host, port = relay.bound[0]
    return f"{scheme}://{host}:{port}"

