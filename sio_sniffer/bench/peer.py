"""The Python benchmark peers: a python-socketio server and its clients, each run as
``python -m sio_sniffer.bench.peer server|clients JSON`` so that they do not share a process
with the bench or the sniffer. They print one JSON line per result on stdout."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sio_sniffer.model.stats import percentile


def _emit_line(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


async def _py_server(opts: dict[str, Any]) -> None:
    import socketio
    from aiohttp import web

    sio = socketio.AsyncServer(async_mode="aiohttp",
                               ping_interval=opts.get("pingInterval", 25000) / 1000,
                               ping_timeout=opts.get("pingTimeout", 20000) / 1000,
                               max_http_buffer_size=100_000_000)
    app = web.Application()
    sio.attach(app)

    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        if isinstance(auth, dict) and auth.get("role") == "dashboard":
            await sio.enter_room(sid, "dashboards")

    async def hook(sid: str, data: Any) -> None:
        await sio.emit("event", data, room="dashboards")

    sio.on("connect", connect)
    sio.on("hook", hook)

    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    _emit_line({"event": "listening", "port": server.sockets[0].getsockname()[1],
                "version": _dist_version("python-socketio")})
    await asyncio.Event().wait()


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


async def _py_clients(opts: dict[str, Any]) -> None:
    import socketio

    now = time.perf_counter
    pad = "x" * int(opts.get("payload", 100))
    total = int(opts["events"])
    count = int(opts["dashboards"])
    mode = opts["mode"]

    async def connect(role: str) -> socketio.AsyncClient:
        client = socketio.AsyncClient(reconnection=False)
        try:
            await client.connect(opts["url"], transports=opts["transports"],
                                 auth={"role": role}, wait_timeout=60)
        except socketio.exceptions.ConnectionError as exc:
            raise RuntimeError(f"{role} could not connect: {exc}") from exc
        return client

    t0 = now()
    dashboards = list(await asyncio.gather(*(connect("dashboard") for _ in range(count))))
    hook = await connect("hook")
    _emit_line({"event": "connected", "ms": (now() - t0) * 1000, "clients": count + 1})
    keep_latency = mode in ("paced", "fanout")
    latencies: list[float] = []
    received = [0] * count
    state = {"deliveries": 0, "out_of_order": 0, "disconnects": 0, "last": now()}
    expected = total * count
    finished = asyncio.get_running_loop().create_future()
    progress_step = max(1, total // 10)
    next_progress = [progress_step]
    window_open = asyncio.Event()

    def handler(k: int) -> Callable[[Any], Awaitable[None]]:
        async def on_event(data: Any) -> None:
            t = now()
            if keep_latency:
                latencies.append((t - data["t"]) * 1000)
            if data["i"] != received[k]:
                state["out_of_order"] += 1
            received[k] += 1
            state["deliveries"] += 1
            state["last"] = t
            if mode == "soak" and state["deliveries"] / count >= next_progress[0]:
                _emit_line({"event": "progress", "done": state["deliveries"] // count,
                            "of": total})
                next_progress[0] += progress_step
            window_open.set()
            if state["deliveries"] == expected and not finished.done():
                finished.set_result(True)
        return on_event

    def gone() -> None:
        state["disconnects"] += 1

    for k, client in enumerate(dashboards):
        client.on("event", handler(k))
        client.on("disconnect", gone)
    sent = 0

    async def emit() -> None:
        nonlocal sent
        await hook.emit("hook", {"i": sent, "t": now(), "pad": pad})
        sent += 1

    async def produce() -> None:
        nonlocal sent
        start = now()
        if mode == "burst":
            while sent < total:
                await emit()
        else:
            # paced and fanout at their rate; the soak at its rate (0: as fast as the window
            # allows) with at most `window` events in flight
            if mode == "soak":
                rate, window = float(opts["rate"]), float(opts["window"])
            else:
                rate = float(opts["rate"]) if mode == "paced" else 1000 / float(opts["interval"])
                window = math.inf
            while sent < total:
                due = min(total, 1 + int((now() - start) * rate)) if rate else total
                while sent < due and sent * count - state["deliveries"] < window * count:
                    await emit()
                if sent < due or not rate:
                    window_open.clear()
                    await window_open.wait()
                else:
                    await asyncio.sleep(max(0.0, (sent / rate) - (now() - start)))

    stall = float(opts.get("stallMs", 15000)) / 1000
    start = now()
    producer = asyncio.get_running_loop().create_task(produce())
    while not finished.done():
        await asyncio.wait([finished], timeout=0.25)
        if not finished.done() and now() - state["last"] > stall and now() - start > stall:
            finished.set_result(False)
    elapsed = now() - start
    producer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await producer
    latencies.sort()

    _emit_line({"event": "result", "complete": finished.result(), "sent": sent,
                "expected": expected, "deliveries": state["deliveries"],
                "out_of_order": state["out_of_order"], "disconnects": state["disconnects"],
                "elapsed_ms": elapsed * 1000, "per_s": state["deliveries"] / elapsed,
                "latency_ms": {"p50": percentile(latencies, 50, ordered=True),
                               "p99": percentile(latencies, 99, ordered=True),
                               "max": latencies[-1] if latencies else None}
                if keep_latency else None})
    await asyncio.gather(*(c.disconnect() for c in [hook, *dashboards]),
                         return_exceptions=True)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("server", "clients"):
        print("usage: python -m sio_sniffer.bench.peer server|clients JSON", file=sys.stderr)
        return 2
    opts = json.loads(argv[1])
    try:
        asyncio.run(_py_server(opts) if argv[0] == "server" else _py_clients(opts))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        _emit_line({"event": "error", "message": str(exc)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
