"""Throughput of the bare relay (with its tap on) against a direct connection, in one run.

A Node socket.io server relays every event of one hook client to 5 dashboard clients (the
benchmark peers in sio_sniffer/bench/node/); the clients run once straight to the server and once
through a :class:`~sio_sniffer.transport.relay.Relay` in this process, whose tap parses every
frame and hands the events to a counting consumer. Rounds alternate so a noisy machine hurts
both sides alike; the figure is the median of the per-round ratios (deliveries/s via relay over
deliveries/s direct).

    NODE_PATH=tests/node/node_modules python3 examples/bench_relay.py --events 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from sio_sniffer.model.tap import TapEvent
from sio_sniffer.transport.relay import Relay

ROOT = Path(__file__).resolve().parents[1]
BENCH_NODE = ROOT / "sio_sniffer" / "bench" / "node"
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"


async def node(script: str, options: dict[str, Any]) -> asyncio.subprocess.Process:
    env = dict(os.environ, NODE_PATH=os.environ.get("NODE_PATH", str(NODE_MODULES)))
    return await asyncio.create_subprocess_exec(
        "node", str(BENCH_NODE / script), json.dumps(options),
        stdout=asyncio.subprocess.PIPE, env=env,
    )


async def line(proc: asyncio.subprocess.Process, event: str) -> dict[str, Any]:
    assert proc.stdout is not None
    while raw := await proc.stdout.readline():
        item: dict[str, Any] = json.loads(raw)
        if item.get("event") == "error":
            raise RuntimeError(item["message"])
        if item.get("event") == event:
            return item
    raise RuntimeError(f"node exited before printing {event!r}")


async def run_clients(url: str, args: argparse.Namespace) -> dict[str, Any]:
    proc = await node("clients.js", {
        "url": url, "mode": "burst", "transports": [args.transport],
        "dashboards": args.dashboards, "events": args.events, "payload": args.payload,
    })
    try:
        result = await line(proc, "result")
    finally:
        await proc.wait()
    if not result["complete"]:
        raise RuntimeError(f"not every event was delivered: {result}")
    return result


async def main(args: argparse.Namespace) -> int:
    server = await node("server.js", {})
    try:
        port = (await line(server, "listening"))["port"]
        upstream = f"http://127.0.0.1:{port}"
        seen: Counter[str] = Counter()

        def consume(event: TapEvent) -> None:
            seen[type(event).__name__] += 1

        relay = Relay(upstream, [("127.0.0.1", 0)], consume)
        await relay.start()
        via = f"http://127.0.0.1:{relay.bound[0][1]}"
        ratios = []
        try:
            await run_clients(upstream, args)  # warm-up: JIT, connection setup paths
            for n in range(args.rounds):
                direct = (await run_clients(upstream, args))["per_s"]
                relayed = (await run_clients(via, args))["per_s"]
                ratios.append(relayed / direct)
                print(f"round {n + 1}: direct {direct:,.0f}/s  relay {relayed:,.0f}/s  "
                      f"ratio {relayed / direct:.2f}", flush=True)
        finally:
            await relay.stop()
        print(f"relay/direct, median of {args.rounds} rounds: {statistics.median(ratios):.2f} "
              f"({args.events:,} events x {args.dashboards} dashboards over {args.transport}; "
              f"tap messages seen: {seen['WsMessage']:,}, tap errors: {seen['TapError']})")
    finally:
        server.kill()
        await server.wait()
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--dashboards", type=int, default=5)
    parser.add_argument("--payload", type=int, default=100, help="bytes of padding per event")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--transport", choices=["websocket", "polling"], default="websocket")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
