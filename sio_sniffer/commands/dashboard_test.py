"""`sio-sniffer dashboard-test`: its arguments and its output.

The page is :mod:`sio_sniffer.web.dashboard_page`; ``--headless`` runs
:mod:`sio_sniffer.diagnostics.browser`'s check.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import webbrowser
from datetime import datetime

import orjson

from sio_sniffer.diagnostics.browser import CHROMIUM, run_browser_check
from sio_sniffer.model.addresses import DEFAULT_SERVER_URL
from sio_sniffer.support.shutdown import stop_event
from sio_sniffer.web.dashboard_page import (
    CLIENTS,
    DEFAULT_NAMESPACES,
    DashboardPage,
    PageEvent,
    PageReport,
    check_url,
    parse_namespaces,
    parse_transports,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", nargs="?", default=DEFAULT_SERVER_URL,
                        help=f"the Socket.IO server (or a sniffer in front of it; default "
                             f"{DEFAULT_SERVER_URL})")
    parser.add_argument("--nsp", nargs="+", default=[",".join(DEFAULT_NAMESPACES)],
                        help="namespaces, comma- or space-separated (default /,/hook,/system)")
    parser.add_argument("--token", help="send auth {\"token\": T} with every CONNECT "
                                        "(default: no auth, as claude-mpm's dashboard)")
    parser.add_argument("--transports", default="polling,websocket",
                        help="polling, websocket or polling,websocket (default; upgrades)")
    parser.add_argument("--client", choices=CLIENTS, default="auto",
                        help="auto: the server's /socket.io/socket.io.js if it serves one, else "
                             "the built-in client; builtin: always the built-in client")
    parser.add_argument("--port", type=int, default=0,
                        help="loopback port for the page (default: a free one)")
    parser.add_argument("--open", action="store_true", help="open the page in a browser")
    parser.add_argument("--headless", action="store_true",
                        help="no page for you: run headless Chromium, POST --events hook "
                             "events, print what the browser received, exit 0 if all of them")
    parser.add_argument("--events", type=int, default=5,
                        help="hook events for --headless (default 5)")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds a namespace may take to connect (default 10)")
    parser.add_argument("--chromium", default=CHROMIUM,
                        help=f"Chromium for --headless (default {CHROMIUM})")
    parser.add_argument("--json", action="store_true", help="--headless: print JSON")


def run(args: argparse.Namespace) -> int:
    """Serve the page until interrupted, or with ``--headless`` check once (0 all received,
    1 not, 2 could not run)."""
    try:
        url = check_url(args.url)
        namespaces = parse_namespaces(args.nsp)
        transports = parse_transports(args.transports)
        if args.events < 1:
            raise ValueError("--events must be at least 1")
        if args.timeout <= 0:
            raise ValueError("--timeout must be positive")
    except ValueError as exc:
        print(f"sio-sniffer dashboard-test: {exc}", file=sys.stderr)
        return 2
    if args.headless:
        return _headless(args, url, namespaces, transports)
    page = DashboardPage(url, namespaces, auth={"token": args.token} if args.token else None,
                         transports=transports, client=args.client, port=args.port,
                         connect_timeout=args.timeout, on_report=_Printer())
    try:
        asyncio.run(_serve(page, args.open))
    except OSError as exc:
        print(f"sio-sniffer dashboard-test: cannot listen on 127.0.0.1:{args.port}: "
              f"{exc.strerror or exc} (pick another with --port)", file=sys.stderr)
        return 2
    return 0


def _headless(args: argparse.Namespace, url: str, namespaces: tuple[str, ...],
              transports: tuple[str, ...]) -> int:
    result = asyncio.run(run_browser_check(
        url, namespaces, args.token, args.events, transports=transports, client=args.client,
        timeout=args.timeout, chromium=args.chromium))
    if args.json:
        print(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(result.summary())
        for view in result.namespaces:
            print("  " + view.line())
    if result.error is not None:
        return 2
    return 0 if result.accepted and result.received == result.accepted else 1


class _Printer:
    """Prints what the page reports: namespace state changes and every event, one line each."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], tuple[str, str | None, str | None]] = {}

    def __call__(self, report: PageReport, new: list[PageEvent]) -> None:
        for view in report.namespaces.values():
            key = (report.page, view.nsp)
            state = (view.state, view.transport, view.error)
            if self._seen.get(key) != state:
                self._seen[key] = state
                print(f"{_clock(time.time() * 1000)} {view.line()}", flush=True)
        for event in new:
            payload = orjson.dumps(event.args).decode()
            payload = payload if len(payload) <= 160 else payload[:157] + "..."
            print(f"{_clock(event.t)} {event.nsp} {event.name} {payload}", flush=True)


def _clock(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%H:%M:%S.%f")[:-3]


async def _serve(page: DashboardPage, open_browser: bool) -> None:
    await page.start()
    print(f"sio-sniffer dashboard-test: open {page.url} (it connects to {page.target} "
          f"namespaces {', '.join(page.namespaces)})", flush=True)
    if open_browser:
        webbrowser.open(page.url)
    stop = stop_event()
    try:
        await stop.wait()
    finally:
        await page.stop()
