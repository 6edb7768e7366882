"""``--ui [HOST:]PORT`` and the loopback rule, without importing aiohttp (the CLI parses early)."""

from __future__ import annotations

import argparse

DEFAULT_HOST = "127.0.0.1"
# Only these names never need a token: anything else (0.0.0.0, a LAN address, 127.0.0.2, a host
# name) may be reachable by others, so the page then asks for one.
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback(host: str) -> bool:
    return host.strip("[]").lower() in LOOPBACK


def parse_ui_address(value: str) -> tuple[str, int]:
    """``PORT``, ``:PORT``, ``HOST:PORT`` or ``[V6]:PORT``; the host defaults to 127.0.0.1."""
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
            f"{value!r} is not [HOST:]PORT (e.g. 8767, 127.0.0.1:8767 or [::1]:8767)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 0-65535")
    return host or DEFAULT_HOST, port
