"""`sio-sniffer diagnose`: its arguments and its output.

The work is done by :mod:`sio_sniffer.diagnostics.diagnose`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from urllib.parse import urlsplit

from sio_sniffer.diagnostics import verdict as v
from sio_sniffer.diagnostics.clients import (
    split_namespaces,
)
from sio_sniffer.diagnostics.diagnose import (
    diagnose,
)
from sio_sniffer.diagnostics.server import (
    DEFAULT_TOKEN,
    TOKEN_ENV,
)
from sio_sniffer.diagnostics.verdict import Check
from sio_sniffer.model.addresses import DEFAULT_SERVER_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", nargs="?", default=DEFAULT_SERVER_URL,
                        help=f"the server to check (default {DEFAULT_SERVER_URL})")
    parser.add_argument("--nsp", nargs="*", default=[],
                        help="namespaces to connect to besides / (e.g. /hook /system)")
    parser.add_argument("--token", help=f"the valid auth token (default ${TOKEN_ENV} or "
                                        f"{DEFAULT_TOKEN!r})")
    parser.add_argument("--events", type=int, default=20,
                        help="hook events for the timing check (default 20)")
    parser.add_argument("--timeout", type=float, default=3.0,
                        help="seconds a connect or request may take (default 3)")
    parser.add_argument("--direct", action="store_true",
                        help="talk to the server directly instead of through a sniffer")
    parser.add_argument("--no-events", action="store_true",
                        help="send no test hook events (they show in every open dashboard and "
                             "in a running proxy's log); the hook and timing checks are skipped")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--browser", action="store_true",
                        help="also count the hook events a real (headless Chromium) browser "
                             "receives on the dashboard test page")


def run(args: argparse.Namespace) -> int:
    """Exit 0 healthy, 1 problems found, 2 could not run."""
    target = args.url.rstrip("/")
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        print(f"sio-sniffer diagnose: {args.url!r} is not an http(s) URL "
              "(e.g. http://localhost:8765)", file=sys.stderr)
        return 2
    if args.events < 1:
        print("sio-sniffer diagnose: --events must be at least 1", file=sys.stderr)
        return 2
    token = args.token or os.environ.get(TOKEN_ENV) or DEFAULT_TOKEN
    printer = None if args.json else _print_check
    notes: list[str] = []

    def note(text: str) -> None:
        # Said before the events go out; on stderr with --json so stdout stays one document.
        notes.append(text)
        print(f"» {text}", file=sys.stderr if args.json else sys.stdout, flush=True)
    if not args.json:
        print(f"sio-sniffer diagnose {target}", flush=True)
    try:
        checks, flags, sniffer = asyncio.run(diagnose(
            target, namespaces=split_namespaces(args.nsp), token=token, events=args.events,
            timeout=args.timeout, sniff=not args.direct, browser=args.browser,
            send_events=not args.no_events, on_check=printer, on_note=note))
    except OSError as exc:
        print(f"sio-sniffer diagnose: could not run: {exc}", file=sys.stderr)
        return 2
    # Warnings are shown but are no problem: they do not touch the server's own clients.
    failed = sum(1 for c in checks if c.status == v.FAIL)
    warned = sum(1 for c in checks if c.status == v.WARN)
    code = 1 if failed else 0
    if args.json:
        print(json.dumps({"target": target, "sniffer": sniffer, "healthy": code == 0,
                          "exit_code": code, "warnings": warned, "notes": notes,
                          "checks": [c.to_dict() for c in checks], "flags": flags},
                         indent=2, default=str))
        return code
    if flags:
        print(f"\nseen by the sniffer ({len(flags)} flag(s)):")
        for flag in flags[:20]:
            print(f"! {flag.get('flag')}: {flag.get('cause')}\n    fix: {flag.get('hint')}")
    print("\n" + ("healthy" if not failed else f"{failed} problem(s) found")
          + (f", {warned} warning(s) (!)" if warned else "")
          + (f" (probes ran through a sniffer at {sniffer})" if sniffer else ""))
    return code


def _print_check(check: Check) -> None:
    print("\n".join(check.lines()), flush=True)
