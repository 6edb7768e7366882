"""``[HOST:]PORT`` on the command line: one parser for --listen, --ui and --admin-ui."""

from __future__ import annotations

import argparse


def split_host_port(value: str, examples: str) -> tuple[str, int]:
    """``PORT``, ``:PORT``, ``HOST:PORT`` or ``[V6]:PORT`` → (host or "", port); an argparse
    error naming ``examples`` otherwise."""
    text = value.strip()
    host = ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        port_text = text
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not [HOST:]PORT (e.g. {examples})") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 0-65535")
    return host, port
