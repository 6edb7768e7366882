"""`sio-sniffer serve`: its arguments and its output.

The work is done by :mod:`sio_sniffer.diagnostics.server`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from sio_sniffer.commands.options import add_remote_arguments
from sio_sniffer.diagnostics.server import (
    DEFAULT_TOKEN,
    FAULT_PRESETS,
    INGEST_PATH,
    LAYOUTS,
    TOKEN_ENV,
    DiagnosticServer,
    combine_faults,
)
from sio_sniffer.model.addresses import BindPolicy, RemoteBindRefused, bind_policy
from sio_sniffer.sinks.jsonlog import JsonLogSink, stdout_binary
from sio_sniffer.support.shutdown import stop_event


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`sio-sniffer serve`'s options."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    parser.add_argument("--layout", choices=LAYOUTS, default="claude-mpm",
                        help="claude-mpm: the real monitor; namespaces: the seed's layout")
    parser.add_argument("--token", default=None,
                        help=f"the token the namespaces layout accepts (default: ${TOKEN_ENV} "
                             f"or {DEFAULT_TOKEN!r})")
    parser.add_argument("--fault", action="append", default=[], choices=sorted(FAULT_PRESETS),
                        help="break the server on purpose (repeatable)")
    parser.add_argument("--pretty", action="store_true", help="render the log for a terminal")
    add_remote_arguments(parser, "the server")


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; the log goes to stdout as JSON lines, notices to stderr."""
    try:
        policy = bind_policy(args.host, "diagnostic server", "opt-in",
                             allow_remote=args.allow_remote)
    except RemoteBindRefused as exc:
        print(f"sio-sniffer serve: {exc}", file=sys.stderr)
        return 2
    token = args.token or os.environ.get(TOKEN_ENV) or DEFAULT_TOKEN
    sink = JsonLogSink(stdout_binary(), pretty=args.pretty, flush_each=True)
    server = DiagnosticServer(args.layout, args.host, args.port, token=token,
                              faults=combine_faults(args.fault), sinks=[sink])
    try:
        asyncio.run(_serve(server, policy))
    except OSError as exc:
        print(f"sio-sniffer serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
              f" (is another server on that port? pick another with --port)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


async def _serve(server: DiagnosticServer, policy: BindPolicy) -> None:
    await server.start()
    stop = stop_event()  # before the lines saying it is up: a stop on them exits cleanly
    exposed = policy.notice(server.port)
    if exposed is not None:
        print(f"sio-sniffer serve: {exposed}", file=sys.stderr, flush=True)
    faults = server.faults.active()
    print(f"sio-sniffer serve: {server.layout} layout on {server.url} "
          f"(namespaces {', '.join(server.namespaces)}; hook POSTs to {INGEST_PATH})"
          + (f"; faults: {', '.join(faults)}" if faults else ""), file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        await server.stop()
