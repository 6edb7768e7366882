"""`sio-sniffer e2e`: its arguments and its output.

The work is done by :mod:`sio_sniffer.diagnostics.e2e`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from sio_sniffer.diagnostics.e2e import (
    flow,
)
from sio_sniffer.support.progress import ProgressBar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=20, help="hook events to send (default 20)")
    parser.add_argument("--target", help="a running server to test instead of the embedded one")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    """Exit 0 only if every event reached the dashboard; 2 if the flow could not run."""
    if args.events < 1:
        print("sio-sniffer e2e: --events must be at least 1", file=sys.stderr)
        return 2
    bar = ProgressBar(args.events, sys.stderr)
    target = args.target.rstrip("/") if args.target else None
    try:
        result = asyncio.run(flow(args.events, target, bar))
    except OSError as exc:
        bar.close()
        print(f"sio-sniffer e2e: could not start: {exc}", file=sys.stderr)
        return 2
    bar.close()
    code = 2 if result.problem else (0 if result.lost == 0 else 1)
    if args.json:
        print(json.dumps({**result.summary(), "exit_code": code}, indent=2))
        return code
    lat = result.summary()["latency_ms"]
    where = "embedded diagnostic server" if not args.target else result.target
    print(f"e2e: {result.events} hook events → {where} → dashboard, "
          f"through the sniffer at {result.sniffer}")
    if result.problem:
        print(f"✗ {result.problem}")
    print(f"delivered {result.delivered}/{result.events}, lost {result.lost}"
          + (f", duplicates {result.duplicates}" if result.duplicates else ""))
    if result.latencies_ms:
        print(f"latency p50 {lat['p50']:.1f} ms  p90 {lat['p90']:.1f} ms  "
              f"p99 {lat['p99']:.1f} ms")
    for failure in result.post_failures[:5]:
        print(f"✗ hook POST {failure}")
    for flag in result.flags[:10]:
        print(f"! {flag.get('flag')}: {flag.get('cause')}\n    fix: {flag.get('hint')}")
    return code
