"""`sio-sniffer proxy --metrics`: /metrics scraped with prometheus_client's own parser during real
traffic, against the records of the JSON log; /healthz on the metrics and live-page ports."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from sio_sniffer import __version__
from tests.conftest import free_port
from tests.paths import NODE_DIR
from tests.rigs import NODE_ENV, TIMEOUT, log_lines, node_server, start_proxy, stop_proxy, until

HERE = Path(__file__).resolve().parent
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(url: str) -> Samples:
    """Every sample of /metrics, parsed by prometheus_client: (name, labels) -> value."""
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == CONTENT_TYPE_LATEST
        text = await resp.text()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def by_label(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {dict(labels)[label]: v for (n, labels), v in samples.items() if n == name}


def _py_setup(sio: socketio.AsyncServer, app: web.Application) -> None:
    """The python-socketio twin of metrics_server.js."""
    @sio.on("relay")
    async def relay(sid: str, data: Any) -> None:
        await sio.emit("relayed", data, skip_sid=sid)

    @sio.on("echo")
    async def echo(sid: str, data: Any) -> Any:
        return data

    async def events(request: web.Request) -> web.Response:
        event = await request.json()
        if not event.get("drop"):
            await sio.emit("hook_event", event)
        return web.Response(status=204)

    app.router.add_post("/api/events", events)


@contextlib.asynccontextmanager
async def node_dashboard(url: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """A socket.io-client that only listens; its lines, once it is connected."""
    proc = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "dashboard_client.js"), url,
        json.dumps({"reconnection": False, "transports": ["websocket"]}),
        env=NODE_ENV, stdout=asyncio.subprocess.PIPE)
    lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def read() -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            await lines.put(json.loads(line))

    reader = asyncio.create_task(read())
    try:
        assert (await asyncio.wait_for(lines.get(), TIMEOUT))["event"] == "connect"
        yield lines
    finally:
        proc.kill()
        await proc.wait()
        reader.cancel()


@contextlib.asynccontextmanager
async def py_dashboard(url: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    client = socketio.AsyncClient(reconnection=False)
    lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def any_event(name: str, data: Any) -> None:
        await lines.put({"event": name, "data": data})

    client.on("*", any_event)
    await client.connect(url, transports=["websocket"])
    try:
        yield lines
    finally:
        await client.disconnect()


async def _received(lines: asyncio.Queue[dict[str, Any]], count: int) -> None:
    for _ in range(count):
        await asyncio.wait_for(lines.get(), TIMEOUT)


@pytest.mark.parametrize("peers", ["python-socketio", "node"])
async def test_scraped_counters_match_the_json_log(tmp_path: Path, py_server_factory: Any,
                                                   peers: str) -> None:
    """A hook (polling), a dashboard (WebSocket; socket.io-client with the Node server) and a
    client asking for acks go through `sio-sniffer proxy --metrics`. Scraped while they are
    connected: clients by role and transport, events by direction/namespace/name, ingests by
    status, lost by cause, flags by kind, decode errors equal what the JSON log holds; the
    latency histograms count what the summary paired; a dashboard that comes back is a
    reconnect; bytes relayed and the build info are there."""
    async with contextlib.AsyncExitStack() as stack:
        if peers == "node":
            upstream = await stack.enter_async_context(node_server(HERE / "metrics_server.js"))
            dashboard = node_dashboard
        else:
            upstream = (await py_server_factory(_py_setup)).url
            dashboard = py_dashboard
        port, metrics_port = free_port(), free_port()
        log = tmp_path / "log.jsonl"
        proc = await start_proxy("--listen", f"127.0.0.1:{port}", "--upstream", upstream,
                                 "--log", str(log), "--metrics", str(metrics_port),
                                 "--deadline", "0.5")
        url = f"http://127.0.0.1:{port}"
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        try:
            dash = contextlib.AsyncExitStack()
            seen = await dash.enter_async_context(dashboard(url))
            hook = socketio.AsyncClient(reconnection=False)
            await hook.connect(url, transports=["polling"])
            stack.push_async_callback(hook.disconnect)
            asker = socketio.AsyncClient(reconnection=False)
            await asker.connect(url, transports=["websocket"])
            stack.push_async_callback(asker.disconnect)
            for n in range(5):
                await hook.emit("relay", {"n": n})
            await _received(seen, 5)
            for n in range(3):
                assert await asker.call("echo", {"n": n}, timeout=TIMEOUT) == {"n": n}
            async with aiohttp.ClientSession() as http:
                for body in ({"n": 1}, {"n": 2, "drop": True}):
                    async with http.post(f"{url}/api/events", json=body) as resp:
                        assert resp.status == 204
            await _received(seen, 1)
            await until(lambda: any(r.get("flag") == "lost" for r in log_lines(log)))
            live = await scrape(metrics_url)
            # the hook and the asker got broadcasts too: clients; the dashboard only listened
            assert {(dict(lb)["role"], dict(lb)["transport"]): v for (n, lb), v in live.items()
                    if n == "sio_sniffer_clients"} == {
                ("dashboard", "websocket"): 1.0, ("client", "polling"): 1.0,
                ("client", "websocket"): 1.0}

            def agree() -> bool:
                return _counted(live) == _logged(log_lines(log))

            await until(agree)  # the log is flushed on the next tick
            assert by_label(live, "sio_sniffer_lost_total", "code")
            assert by_label(live, "sio_sniffer_ingests_total", "status") == {"204": 2.0}
            relayed = by_label(live, "sio_sniffer_relayed_bytes_total", "dir")
            assert relayed["in"] > 0 and relayed["out"] > 0
            [build] = [dict(lb) for (n, lb) in live if n == "sio_sniffer_build_info"]
            assert build["version"] == __version__ and build["mode"] == "two-process"
            assert build["loop"] == "uvloop"
            assert live[("sio_sniffer_reconnects_total", ())] == 0.0
            # the dashboard leaves and comes back from the same host with the same user agent
            await dash.aclose()
            await until(lambda: sum(r["event"] == "eio.close" for r in log_lines(log)) == 1)
            async with dashboard(url):
                await until(lambda: sum(r["event"] == "eio.open" for r in log_lines(log)) == 4)
                later = await scrape(metrics_url)
            assert later[("sio_sniffer_reconnects_total", ())] == 1.0
        finally:
            assert await stop_proxy(proc) == 0
    summary = log_lines(log)[-1]
    assert summary["event"] == "summary"
    relay_count = live[("sio_sniffer_relay_latency_seconds_count", ())]
    ack_count = live[("sio_sniffer_ack_latency_seconds_count", ())]
    assert relay_count > 0 and ack_count == 3.0
    assert relay_count == summary["expectations"]["relay_latency"]["count"]
    assert ack_count == summary["acks"]["paired"]


def _counted(samples: Samples) -> dict[str, Any]:
    return {
        "events": {(d["dir"], d["nsp"], d["name"]): v for (n, lb), v in samples.items()
                   if n == "sio_sniffer_events_total" for d in [dict(lb)]},
        "flags": by_label(samples, "sio_sniffer_flags_total", "kind"),
        "lost": by_label(samples, "sio_sniffer_lost_total", "code"),
        "decode_errors": sum(by_label(samples, "sio_sniffer_decode_errors_total",
                                      "layer").values()),
    }


def _logged(lines: list[dict[str, Any]]) -> dict[str, Any]:
    def count(items: Callable[[], Any]) -> dict[Any, float]:
        return {k: float(v) for k, v in collections.Counter(items()).items()}

    return {
        "events": count(lambda: ((r["dir"], r["nsp"], r["name"]) for r in lines
                                 if r["event"] == "sio.event")),
        "flags": count(lambda: (r["flag"] for r in lines if r["event"] == "flag")),
        "lost": count(lambda: (r["code"] for r in lines
                               if r["event"] == "flag" and r["flag"] == "lost")),
        "decode_errors": float(sum(r["event"] == "decode_error" for r in lines)),
    }


def test_latency_histogram_renders_as_prometheus_clients_histogram() -> None:
    """The sink's lock-free latency histogram is scraped exactly as prometheus_client's
    Histogram with the same buckets (bounds inclusive, +Inf, _count, _sum), but _created."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from sio_sniffer.sinks.metrics import LATENCY_BUCKETS, _Latency

    theirs, ours = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("x_seconds", "doc", registry=theirs, buckets=LATENCY_BUCKETS)
    latency = _Latency("x_seconds", "doc", LATENCY_BUCKETS)
    ours.register(latency)
    for value in (0.0, 0.0005, 0.0007, 0.001, 0.25, 3.0, 10.0, 12.0):
        reference.observe(value)
        latency.observe(value)
    expected = [line for line in generate_latest(theirs).decode().splitlines()
                if "_created" not in line]
    assert generate_latest(ours).decode().splitlines() == expected
