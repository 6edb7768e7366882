"""Real peers for the capture/replay tests: an app server, its clients, a captured session."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import socketio
from aiohttp import web

from sio_sniffer.capture import CaptureWriter
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from tests.paths import NODE_MODULES

TOKEN = "tok-123"


class AppServer:
    """The server under replay: auth, echo with acks, binary, server-side acks, a hook POST.

    ``changed=True`` is the "deliberately changed" version: ``echoed`` carries an extra field
    and ``bin_back`` is no longer sent. ``drop_hooks=True`` answers hook POSTs 200 and never
    emits them (the "goes in but never comes out" bug).
    """

    def __init__(self, changed: bool = False, drop_hooks: bool = False) -> None:
        self.changed = changed
        self.drop_hooks = drop_hooks
        self.sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
        self.app = web.Application()
        self.sio.attach(self.app)
        self.app.router.add_post("/api/events", self._hook)
        self.app.router.add_get("/", self._page)
        self.runner: web.AppRunner | None = None
        self.url = ""
        sio = self.sio

        @sio.on("connect", namespace="*")
        async def connect(namespace: str, sid: str, environ: Any, auth: Any = None) -> None:
            if not isinstance(auth, dict) or auth.get("token") != TOKEN:
                raise socketio.exceptions.ConnectionRefusedError("bad token")
            await sio.emit("welcome", {"sid": sid, "nsp": namespace}, to=sid,
                           namespace=namespace)

        @sio.on("echo")
        async def echo(sid: str, *args: Any) -> Any:
            payload: dict[str, Any] = {"args": list(args)}
            if self.changed:
                payload["extra"] = True
            await sio.emit("echoed", payload, to=sid)
            return {"ok": True, "count": len(args)}

        @sio.on("bin")
        async def binary(sid: str, data: bytes) -> None:
            if not self.changed:
                await sio.emit("bin_back", data[::-1], to=sid)

        @sio.on("ask")
        async def ask(sid: str) -> None:
            reply = await sio.call("question", {"q": "colour?"}, to=sid, timeout=5)
            await sio.emit("answer_was", {"reply": reply}, to=sid)

        @sio.on("stats", namespace="/admin")
        async def stats(sid: str, what: str) -> Any:
            return {"what": what, "clients": 1}

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not self.drop_hooks:
            await self.sio.emit("hook_event", body)
        return web.json_response({"ok": True})

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


PAGE = """<!doctype html><html><body><pre id="log"></pre>
<script src="/socket.io/socket.io.js"></script>
<script>
const log = (m) => { document.getElementById("log").textContent += m + "\\n"; };
const t = new URLSearchParams(location.search).get("t") || "polling,websocket";
const s = io({auth: {token: "tok-123"}, transports: t.split(",")});
s.on("welcome", (w) => {
  log("welcome");
  s.emit("echo", "from-browser", (ack) => log("ack " + JSON.stringify(ack)));
});
s.on("echoed", (e) => { log("echoed " + JSON.stringify(e)); s.disconnect(); log("done"); });
</script></body></html>"""


async def drive_python_client(url: str) -> list[tuple[str, Any]]:
    """Polling then WebSocket, two namespaces, acks both ways, binary and a hook POST."""
    client = socketio.AsyncClient(reconnection=False)
    got: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    seen: list[tuple[str, Any]] = []

    # One catch-all: a handler registered on "/" would hide the "*" namespace handler there.
    @client.on("*", namespace="*")
    async def any_event(event: str, namespace: str, *args: Any) -> Any:
        await got.put((event, args[0] if args else None))
        return "blue" if event == "question" else None

    async def expect(name: str) -> Any:
        while True:
            event, data = await asyncio.wait_for(got.get(), 10)
            seen.append((event, data))
            if event == name:
                return data

    await client.connect(url, namespaces=["/", "/admin"], auth={"token": TOKEN},
                         wait_timeout=10)
    await expect("welcome")
    ack = await client.call("echo", ("hi", {"n": 1}), timeout=10)
    assert ack == {"ok": True, "count": 2}
    await expect("echoed")
    await client.emit("bin", b"\x00\x01\x02\xff")
    await expect("bin_back")
    await client.emit("ask")
    await expect("answer_was")
    stats = await client.call("stats", "load", namespace="/admin", timeout=10)
    assert stats == {"what": "load", "clients": 1}
    async with aiohttp.ClientSession() as http, http.post(
            url + "/api/events", json={"type": "hook", "data": {"x": 1}}) as resp:
        assert resp.status == 200
    await expect("hook_event")
    await client.disconnect()
    return seen


NODE_CLIENT = r"""
const { io } = require("socket.io-client");
// With `node -e`, the URL is the last argument.
const s = io(process.argv[process.argv.length - 1],
             { auth: { token: "tok-123" }, transports: ["websocket"], reconnection: false });
s.on("welcome", () => {
  s.emit("echo", "node", Buffer.from([9, 8, 7]), (ack) => {
    s.emit("bin", Buffer.from([1, 2, 3]));
  });
});
s.on("bin_back", (b) => { console.log("done " + Buffer.from(b).toString("hex")); s.close(); });
s.on("connect_error", (e) => { console.log("error " + e.message); process.exit(2); });
"""


async def run_node_client(url: str) -> str:
    """Run socket.io-client (WebSocket only, binary, ack) against ``url``; its last line."""
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    proc = await asyncio.create_subprocess_exec(
        "node", "-e", NODE_CLIENT, url, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    return out.decode().strip()


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


@contextlib.asynccontextmanager
async def capturing(upstream: str, path: Path, *, show_secrets: bool = True
                    ) -> AsyncIterator[Sniffer]:
    """A sniffer in front of ``upstream`` writing a capture to ``path`` (closed on the way out)."""
    writer = CaptureWriter(path, upstream=upstream, show_secrets=show_secrets)
    sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=upstream),
                      sinks=[writer], tap_sinks=[writer.tap])
    await sniffer.start()
    try:
        yield sniffer
    finally:
        await sniffer.stop()
        writer.close()


async def capture_session(upstream: str, path: Path, *, show_secrets: bool,
                          node: bool = True) -> None:
    async with capturing(upstream, path, show_secrets=show_secrets) as sniffer:
        await drive_python_client(sniffer.url)
        if node:
            assert (await run_node_client(sniffer.url)) == "done 030201"


async def capture_lost_hook(path: Path) -> None:
    """A dashboard connected, a hook POST the server swallows, then the dashboard leaves."""
    srv = AppServer(drop_hooks=True)
    await srv.start()
    writer = CaptureWriter(path, upstream=srv.url)
    sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=srv.url),
                      sinks=[writer], tap_sinks=[writer.tap])
    await sniffer.start()
    client = socketio.AsyncClient(reconnection=False)
    try:
        await client.connect(sniffer.url, auth={"token": TOKEN}, transports=["websocket"],
                             wait_timeout=10)
        async with aiohttp.ClientSession() as http, http.post(
                sniffer.url + "/api/events", json={"type": "hook", "data": {"x": 2}}) as resp:
            assert resp.status == 200
        # The capture has to span the analysis deadline (0.2 s in the test): the passing of
        # time with nothing coming out is the behaviour being captured.
        await asyncio.sleep(0.5)
        await client.disconnect()
    finally:
        await sniffer.stop()
        writer.close()
        await srv.stop()
