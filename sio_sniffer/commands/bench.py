"""`sio-sniffer bench`: its arguments and its output.

The work is done by :mod:`sio_sniffer.bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from dataclasses import fields

from sio_sniffer.bench import (
    DEFAULT_SOAK_RATE,
    DEFAULT_WORKLOADS,
    NODE_MODULES_ENV,
    WORKLOADS,
    BenchConfig,
    BenchError,
    bench,
    cache_dir,
)
from sio_sniffer.commands.options import csv, non_negative_float, positive_float, positive_int
from sio_sniffer.support import loops


def _workloads(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    for name in names:
        if name not in WORKLOADS and name != "all":
            raise argparse.ArgumentTypeError(
                f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)} or all")
    return list(WORKLOADS) if "all" in names else names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workload", "-w", type=_workloads, action="extend", metavar="NAME[,NAME]",
                   help=f"what to run (repeatable): {', '.join(WORKLOADS)} or all "
                        f"(default: all)")
    p.add_argument("--reps", type=positive_int, default=5,
                   help="A/B repetitions of each burst workload (default 5)")
    p.add_argument("--events", type=positive_int, default=20_000,
                   help="events per burst (default 20000)")
    p.add_argument("--dashboards", type=positive_int, default=5,
                   help="dashboard clients in the burst and paced workloads (default 5)")
    p.add_argument("--payload", type=int, default=100, metavar="BYTES",
                   help="padding carried by each event (default 100)")
    p.add_argument("--rate", type=positive_float, default=500.0,
                   help="paced: events per second (default 500)")
    p.add_argument("--duration", type=positive_float, default=10.0,
                   help="paced: seconds per run (default 10)")
    p.add_argument("--paced-reps", type=positive_int, default=3,
                   help="A/B repetitions of the paced workload (default 3)")
    p.add_argument("--clients", type=positive_int, default=1000,
                   help="fanout: concurrent clients (default 1000)")
    p.add_argument("--broadcasts", type=positive_int, default=5,
                   help="fanout: broadcasts, one per --interval (default 5)")
    p.add_argument("--interval", type=positive_float, default=1.0,
                   help="fanout: seconds between broadcasts (default 1)")
    p.add_argument("--fanout-transports", default=["polling", "websocket"],
                   type=csv,
                   help="fanout: the clients' transports (default polling,websocket: the "
                        "upgrade path browsers take)")
    p.add_argument("--soak-events", type=positive_int, default=1_000_000,
                   help="soak: events through the sniffer (default 1000000)")
    p.add_argument("--soak-dashboards", type=positive_int, default=1,
                   help="soak: dashboard clients (default 1)")
    p.add_argument("--soak-rate", type=non_negative_float, default=DEFAULT_SOAK_RATE,
                   help=f"soak: events per second (default {DEFAULT_SOAK_RATE:g}: sustained load, "
                        "which the observer keeps up with; 0: as fast as the peers go, which "
                        "measures the relay's buffer of copies the observer has yet to work off)")
    p.add_argument("--window", type=positive_int, default=2000,
                   help="soak: events in flight at most (default 2000)")
    p.add_argument("--against", choices=("mitmproxy",),
                   help="also run each burst and paced workload through mitmdump (must be on "
                        "PATH)")
    p.add_argument("--metrics-ab", action="store_true",
                   help="also run each burst and paced workload through a second sniffer with "
                        "--metrics, scraped every second, interleaved with the others: the "
                        "cost of the metrics as a difference of ratios to direct")
    p.add_argument("--peers", choices=("auto", "node", "python"), default="auto",
                   help="server and client peers (default: Node if available)")
    p.add_argument("--node-modules", metavar="DIR",
                   help=f"a node_modules holding socket.io and socket.io-client (default: "
                        f"${NODE_MODULES_ENV}, else {cache_dir() / 'node_modules'}, installed "
                        f"with npm on first use)")
    p.add_argument("--sniffer-loop", choices=loops.LOOPS, default="auto",
                   help="the sniffer's --loop (default auto: uvloop when installed, as the "
                        "proxy command runs by default)")
    p.add_argument("--sniffer-args", type=shlex.split, default=[], metavar="ARGS",
                   help="extra arguments for `sio-sniffer proxy`, e.g. '--profile claude-mpm'")
    p.add_argument("--stall", type=positive_float, default=30.0, metavar="SECONDS",
                   help="give a run up when no event arrived for this long (default 30)")
    p.add_argument("--keep-logs", metavar="DIR", help="keep the sniffer's JSON logs here")
    p.add_argument("--json", action="store_true", help="print every run and the table as JSON")
    p.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def command_line(args: argparse.Namespace) -> str:
    """The options that differ from the defaults, as a command to run the same bench again."""
    reference = argparse.ArgumentParser()
    add_arguments(reference)
    defaults = vars(reference.parse_args([]))
    words = ["sio-sniffer", "bench"]
    for action in reference._actions:
        dest = action.dest
        if dest == "help" or not action.option_strings:
            continue
        value = getattr(args, dest, None)
        if dest == "workload":
            if value and list(value) != list(DEFAULT_WORKLOADS):
                words += ["--workload", ",".join(value)]
        elif value != defaults.get(dest):
            flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") \
                else action.option_strings[0]
            if isinstance(value, bool):
                words.append(flag)
            elif isinstance(value, list):
                words += [flag, ",".join(map(str, value)) if dest != "sniffer_args"
                          else shlex.join(value)]
            else:
                words += [flag, str(int(value)) if isinstance(value, float)
                          and value.is_integer() else str(value)]
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    if not args.workload:
        args.workload = list(DEFAULT_WORKLOADS)
    args.workload = list(dict.fromkeys(args.workload))
    again = command_line(args)
    try:
        args.sniffer_loop = loops.resolve(args.sniffer_loop)
    except loops.LoopError as exc:
        print(f"sio-sniffer: {exc}", file=sys.stderr)
        return 2
    config = BenchConfig(command_line=again, **{
        f.name: getattr(args, f.name) for f in fields(BenchConfig) if f.name != "command_line"})
    try:
        return asyncio.run(bench(config, sys.stdout, sys.stderr))
    except BenchError as exc:
        print(f"sio-sniffer: bench: {exc}", file=sys.stderr)
        return 1

