"""The bench's scenarios: each workload's peers, load and A/B targets, and one run's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORKLOADS = ("burst-ws", "burst-polling", "paced", "fanout", "soak")
DEFAULT_WORKLOADS = ("burst-ws", "burst-polling", "paced", "fanout", "soak")
# Sustained load for the soak: twice the relay's copies per event (in and out) at 10,000 events/s
# is what the observer process works off on these 2-core machines while the peers and the relay
# take their share; faster, the copies queue up in the relay and the soak measures that queue.
DEFAULT_SOAK_RATE = 10_000.0
# `--metrics-ab`: a second sniffer, the same but for --metrics, scraped along every run
METRICS_TARGET = "sniffer+metrics"


@dataclass(frozen=True)
class BenchConfig:
    """What `sio-sniffer bench` was asked to run (the command's options, typed)."""

    workload: list[str]
    command_line: str
    reps: int = 5
    events: int = 20_000
    dashboards: int = 5
    payload: int = 100
    rate: float = 500.0
    duration: float = 10.0
    paced_reps: int = 3
    clients: int = 1000
    broadcasts: int = 5
    interval: float = 1.0
    fanout_transports: list[str] = field(default_factory=lambda: ["polling", "websocket"])
    soak_events: int = 1_000_000
    soak_dashboards: int = 1
    soak_rate: float = DEFAULT_SOAK_RATE
    window: int = 2000
    against: str | None = None
    metrics_ab: bool = False
    peers: str = "auto"
    node_modules: str | None = None
    sniffer_loop: str = "auto"
    sniffer_args: list[str] = field(default_factory=list)
    stall: float = 30.0
    keep_logs: str | None = None
    json: bool = False
    markdown: bool = False
    quiet: bool = False


@dataclass
class Workload:
    name: str
    mode: str
    transports: list[str]
    dashboards: int
    events: int
    payload: int
    rate: float = 0.0
    interval: float = 1000.0
    window: int = 0
    reps: int = 1
    targets: tuple[str, ...] = ("direct", "sniffer")

    def client_opts(self, url: str, stall_s: float) -> dict[str, Any]:
        return {"url": url, "mode": self.mode, "transports": self.transports,
                "dashboards": self.dashboards, "events": self.events, "payload": self.payload,
                "rate": self.rate, "interval": self.interval, "window": self.window,
                "stallMs": int(stall_s * 1000)}


def build_workloads(args: BenchConfig) -> list[Workload]:
    extra = ("mitmproxy",) if args.against == "mitmproxy" else ()
    ab = ("direct", "sniffer", *((METRICS_TARGET,) if args.metrics_ab else ()), *extra)
    out = []
    for name in args.workload:
        if name == "burst-ws":
            out.append(Workload(name, "burst", ["websocket"], args.dashboards, args.events,
                                args.payload, reps=args.reps, targets=ab))
        elif name == "burst-polling":
            out.append(Workload(name, "burst", ["polling"], args.dashboards, args.events,
                                args.payload, reps=args.reps, targets=ab))
        elif name == "paced":
            out.append(Workload(name, "paced", ["websocket"], args.dashboards,
                                max(1, round(args.rate * args.duration)), args.payload,
                                rate=args.rate, reps=args.paced_reps, targets=ab))
        elif name == "fanout":
            out.append(Workload(name, "fanout", args.fanout_transports, args.clients,
                                args.broadcasts, args.payload, interval=args.interval * 1000,
                                targets=("direct", "sniffer")))
        elif name == "soak":
            out.append(Workload(name, "soak", ["websocket"], args.soak_dashboards,
                                args.soak_events, args.payload, rate=args.soak_rate,
                                window=args.window, targets=("sniffer",)))
    return out


@dataclass
class Run:
    workload: str
    target: str
    rep: int
    result: dict[str, Any]
    connect_ms: float
    rss: list[dict[str, Any]] = field(default_factory=list)
    catch_up_s: float | None = None
    scrapes: int | None = None  # /metrics scraped during the run (METRICS_TARGET)
