"""`sio-sniffer hook-test`: its arguments and its output.

The work is done by :mod:`sio_sniffer.diagnostics.hook`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from dataclasses import asdict

from sio_sniffer.diagnostics.clients import (
    hook_debug,
)
from sio_sniffer.diagnostics.hook import (
    Send,
    run_http,
    run_socketio,
)
from sio_sniffer.diagnostics.server import DEFAULT_TOKEN, TOKEN_ENV
from sio_sniffer.model.addresses import DEFAULT_SERVER_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", nargs="?", default=DEFAULT_SERVER_URL,
                        help="the server (or sniffer)")
    parser.add_argument("--mode", choices=("http", "socketio"), default="http",
                        help="http: POST /api/events (claude-mpm today); socketio: a client "
                             "on /hook and /system with auth (older versions)")
    parser.add_argument("--events", type=int, default=5, help="events to send (default 5)")
    parser.add_argument("--continuous", type=float, metavar="SECONDS",
                        help="keep sending for this long instead of --events")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between events with --continuous (default 1)")
    parser.add_argument("--token", help=f"auth token for --mode socketio (default ${TOKEN_ENV} "
                                        f"or {DEFAULT_TOKEN!r})")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Exit 0 if every send succeeded, 1 if some failed, 2 if nothing could be sent at all."""
    url = args.url.rstrip("/")
    debug = hook_debug()
    token = args.token or os.environ.get(TOKEN_ENV) or DEFAULT_TOKEN

    def on_send(send: Send) -> None:
        if not args.json:
            mark = "✓" if send.ok else "✗"
            print(f"{mark} event {send.seq}: {send.outcome} ({send.elapsed_ms:.1f} ms)",
                  flush=True)

    if args.mode == "http":
        report = asyncio.run(run_http(url, args.events, args.continuous, args.interval, debug,
                                      on_send))
    else:
        report = asyncio.run(run_socketio(url, args.events, args.continuous, args.interval,
                                          token, debug, on_send))
    code = 2 if not report.connected else (1 if report.failed else 0)
    if args.json:
        out = asdict(report)
        out["exit_code"] = code
        print(json.dumps(out, indent=2))
        return code
    if report.problem:
        print(f"✗ {report.problem}")
    sent = len(report.sends)
    print(f"{args.mode} hook → {url}: {sent - report.failed}/{sent} sent")
    if args.mode == "socketio" and report.connected:
        print(f"connection: {len(report.disconnects)} disconnect(s)"
              + (f" ({', '.join(report.disconnects)})" if report.disconnects else "")
              + f", {report.reconnects} reconnection(s)")
    return code
