"""Where the observer process spends its time, stage by stage, per record.

Records what the relay ships to the observer process (the channel of framed copies) while the
Node socket.io peers of `sio-sniffer bench` run a workload through a relay, then works the
recording off offline, timing each stage on its own (best of --rounds):

    tap       channel frames -> HTTP/WebSocket tap events (ConnectionTap)
    pipeline  tap events -> Engine.IO/Socket.IO records (codec included)
    analysis  records -> sessions, broadcasts, in->out correlation, flags
    log       records -> JSON log lines (structlog chain, to memory)

    python examples/observer_stages.py                      # 1 dashboard, like the soak
    python examples/observer_stages.py --dashboards 5       # burst shape: a 5-way broadcast

The sum is what one record costs the observer on a core of its own; `sio-sniffer bench`
measures the whole sniffer against no sniffer.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import time
from pathlib import Path

from sio_sniffer.analysis import AnalysisConfig, Analyzer
from sio_sniffer.bench.processes import find_peers, run_clients, start_server
from sio_sniffer.bench.workloads import Workload
from sio_sniffer.model import Record
from sio_sniffer.model.tap import TapEvent
from sio_sniffer.pipeline.decode import Pipeline, PipelineConfig
from sio_sniffer.sinks.jsonlog import JsonLogSink, LogFilter
from sio_sniffer.testing import free_port
from sio_sniffer.transport.channel import ChannelReader, ChannelWriter
from sio_sniffer.transport.relay import Relay

ROOT = Path(__file__).resolve().parents[1]


async def record_channel(events: int, dashboards: int, node_modules: str | None) -> bytes:
    """The channel bytes of one burst relayed to ``dashboards`` clients."""
    peers = find_peers("node", node_modules, print)
    server, upstream = await start_server(peers)
    chunks: list[bytearray] = []
    writer = ChannelWriter(chunks.append, lambda: 0)
    port = free_port()
    relay = Relay(upstream, [("127.0.0.1", port)], lambda _: None, tap_factory=writer.tap)
    await relay.start()
    try:
        work = Workload("stages", "burst", ["websocket"], dashboards, events, 100)
        result, _ = await run_clients(peers, work, f"http://127.0.0.1:{port}", 30,
                                            lambda *_: None)
        if not result.get("complete"):
            raise SystemExit(f"the workload did not complete: {result}")
    finally:
        await relay.stop()
        await server.stop()
    writer.flush()
    return b"".join(chunks)


def one_round(data: bytes) -> tuple[int, dict[str, float]]:
    """Each stage over the whole recording, fed by the previous stage's output."""
    took: dict[str, float] = {}
    clock = time.perf_counter

    start = clock()
    events: list[TapEvent] = []
    ChannelReader(events.append, 16 << 20).feed(data)
    took["tap"] = clock() - start

    records: list[Record] = []
    pipeline = Pipeline(PipelineConfig(), records.append)
    start = clock()
    for event in events:
        pipeline.feed(event)
    took["pipeline"] = clock() - start

    analyzer = Analyzer(AnalysisConfig(), lambda _: None)
    start = clock()
    for record in records:
        analyzer.feed(record)
    took["analysis"] = clock() - start

    sink = JsonLogSink(io.BytesIO(), log_filter=LogFilter())
    start = clock()
    for record in records:
        sink(record)
    took["log"] = clock() - start
    return len(records), took


def time_stages(data: bytes, rounds: int) -> tuple[int, dict[str, float]]:
    """Best of ``rounds`` per stage (the machine is shared: the minimum is the cost)."""
    best: dict[str, float] = {}
    count = 0
    for _ in range(rounds):
        count, took = one_round(data)
        for name, seconds in took.items():
            best[name] = min(best.get(name, float("inf")), seconds)
        gc.collect()
    return count, best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=50_000, help="events the hook emits")
    p.add_argument("--dashboards", type=int, default=1, help="clients each event reaches")
    p.add_argument("--rounds", type=int, default=3, help="timing rounds (best is reported)")
    p.add_argument("--node-modules", default=str(ROOT / "tests" / "node" / "node_modules"))
    args = p.parse_args()
    data = asyncio.run(record_channel(args.events, args.dashboards, args.node_modules))
    count, best = time_stages(data, args.rounds)
    total = sum(best.values())
    print(f"{args.events:,} events x {args.dashboards} dashboards: {count:,} records, "
          f"{len(data) / 1e6:.1f} MB of channel")
    for name, seconds in best.items():
        print(f"  {name:9} {seconds / count * 1e6:6.2f} us/record  {seconds / total:6.1%}")
    print(f"  {'total':9} {total / count * 1e6:6.2f} us/record  "
          f"= {count / total:,.0f} records/s on one core")


if __name__ == "__main__":
    main()
