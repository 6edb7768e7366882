"""A python-socketio server whose payloads carry noise under arbitrary key names (a float of
epoch seconds, epoch milliseconds, an ISO-8601 time, a UUID, a random token, a counter), and that
can be changed in one way at a time: ``POST /mode?change=NAME`` (none, renamed, dropped, value,
missing, extra; ``counting``: ``hello`` carries how many connections the server has seen, a value
that differs between two replays and fits no rule of noise by nature). A client joining ``/late``
is told how many pings its Engine.IO session sent before (``welcome_late``): the server behaves
differently on a late join. The twin of ``noisy_server.js``; prints its port on stdout once it
listens.

    python tests/replay/noisy_server.py
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import socketio
from aiohttp import web

CHANGES = ("none", "renamed", "dropped", "value", "missing", "extra", "counting")


def make_app() -> web.Application:
    # Every namespace is accepted (handlers registered for "*" alone do not open them); any
    # origin too, as socket.io-client in Node sends one python-engineio does not know.
    sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=1, ping_timeout=1,
                               namespaces="*", cors_allowed_origins="*")
    app = web.Application()
    sio.attach(app)
    state = {"change": "none"}
    seq = itertools.count(1)
    visits = itertools.count(1)
    pings: dict[str, int] = {}  # Engine.IO sid -> pings on any namespace

    async def set_mode(request: web.Request) -> web.Response:
        change = request.query.get("change", "")
        if change not in CHANGES:
            return web.Response(status=400, text=f"change must be one of {', '.join(CHANGES)}")
        state["change"] = change
        return web.Response(text=change)

    app.router.add_post("/mode", set_mode)

    @sio.on("connect", namespace="*")
    async def connect(namespace: str, sid: str, environ: Any, auth: Any = None) -> None:
        # Emitted once the CONNECT answer is out: a connect handler's emits would precede it.
        asyncio.get_running_loop().call_soon(asyncio.ensure_future, greet(namespace, sid))

    async def greet(namespace: str, sid: str) -> None:
        hello = {"sessionKey": f"k-{sid}", "nonce": secrets.token_hex(8), "nsp": namespace}
        if state["change"] == "counting":
            hello["visits"] = next(visits)
        if state["change"] != "missing":
            await sio.emit("hello", hello, to=sid, namespace=namespace)
        if state["change"] == "extra":
            await sio.emit("motd", {"text": "maintenance at noon"}, to=sid, namespace=namespace)
        if namespace == "/late":
            before = pings.get(sio.manager.eio_sid_from_sid(sid, namespace), 0)
            await sio.emit("welcome_late", {"pings_before": before}, to=sid, namespace=namespace)

    @sio.on("ping_me", namespace="*")
    async def ping_me(namespace: str, sid: str, data: dict[str, Any]) -> Any:
        change = state["change"]
        eio_sid = sio.manager.eio_sid_from_sid(sid, namespace)
        pings[eio_sid] = pings.get(eio_sid, 0) + 1
        now = time.time()
        body: dict[str, Any] = {"n": data["n"], "status": "degraded" if change == "value" else "ok",
                                "relayed_at": now, "sentAtMs": int(now * 1000),
                                "traceRef": str(uuid.uuid4()), "seq": next(seq)}
        if change == "dropped":
            del body["status"]
        name = "pong_reply" if change == "renamed" else "pong_back"
        await sio.emit(name, body, to=sid, namespace=namespace)
        return {"ok": True, "servedAt": datetime.now(timezone.utc).isoformat()}

    return app


async def main() -> None:
    runner = web.AppRunner(make_app(), shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
