"""The command line: the only place that parses arguments and wires the parts together.

Each subcommand lives in its own module of :mod:`sio_sniffer.commands` exposing
``add_arguments(parser)`` and ``run(args)``; modules are imported only when their command runs,
so ``sio-sniffer decode`` does not pay for aiohttp and the browser tooling.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sio_sniffer import __version__

# name -> (module in sio_sniffer.commands, one-line help), in the order of `sio-sniffer --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "proxy": ("proxy", "sit between Socket.IO clients and a server; log and flag"),
    "e2e": ("e2e", "end-to-end flow test: hook -> server -> dashboard"),
    "diagnose": ("diagnose", "check a server step by step: cause and fix"),
    "serve": ("serve", "run the diagnostic Socket.IO server"),
    "hook-test": ("hook_test", "simulate the claude-mpm hook handler"),
    "auth-test": ("auth_test", "connection and authentication tests"),
    "dashboard-test": ("dashboard_test", "test every namespace from a real browser"),
    "decode": ("decode", "decode Engine.IO/Socket.IO frames or polling bodies"),
    "replay": ("replay", "re-drive a captured session against a server"),
    "report": ("report", "analyse capture or HAR files: text, JSON or HTML"),
    "redact": ("redact", "fingerprint secrets (and payloads) in a capture to share"),
    "bench": ("bench", "measure the sniffer's cost: direct vs through it, A/B"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sio-sniffer",
        description="A transparent Socket.IO proxy that finds where the event flow breaks.")
    parser.add_argument("--version", action="version", version=f"sio-sniffer {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen command's module is imported (and so only its arguments are known).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            importlib.import_module(f"sio_sniffer.commands.{module}").add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    module = getattr(args, "_module", None)
    if module is None:
        parser.print_help()
        return 2
    # The command's own words, for a command that hands them to a child process (proxy's worker).
    args.argv = args_list[args_list.index(args.command) + 1:]
    try:
        result: int = importlib.import_module(f"sio_sniffer.commands.{module}").run(args)
    except KeyboardInterrupt:
        return 130
    return result
