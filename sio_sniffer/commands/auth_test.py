"""`sio-sniffer auth-test`: its arguments and its output.

The work is done by :mod:`sio_sniffer.diagnostics.auth`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os

from sio_sniffer.diagnostics import verdict as v
from sio_sniffer.diagnostics.auth import (
    DEFAULT_NAMESPACES,
    auth_suite,
)
from sio_sniffer.diagnostics.clients import (
    split_namespaces,
)
from sio_sniffer.diagnostics.server import DEFAULT_TOKEN, TOKEN_ENV
from sio_sniffer.model.addresses import DEFAULT_SERVER_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", nargs="?", default=DEFAULT_SERVER_URL,
                        help="the server (or sniffer)")
    parser.add_argument("--token", help=f"the valid token (default ${TOKEN_ENV} or "
                                        f"{DEFAULT_TOKEN!r})")
    parser.add_argument("--nsp", nargs="*", default=list(DEFAULT_NAMESPACES),
                        help="namespaces to test besides / (default: /hook /system)")
    parser.add_argument("--timeout", type=float, default=3.0,
                        help="seconds a connection may take (default 3)")
    parser.add_argument("--json", action="store_true", help="print the verdicts as JSON")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when every test passed, 1 otherwise."""
    token = args.token or os.environ.get(TOKEN_ENV) or DEFAULT_TOKEN
    url = args.url.rstrip("/")
    checks = asyncio.run(auth_suite(url, token, split_namespaces(args.nsp), args.timeout))
    code = 1 if any(c.status == v.FAIL for c in checks) else 0
    if args.json:
        print(json.dumps({"url": url, "exit_code": code,
                          "tests": [c.to_dict() for c in checks]}, indent=2))
    else:
        print(f"auth-test {url}")
        for check in checks:
            print("\n".join(check.lines()))
    return code
