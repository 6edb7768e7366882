"""``--ui [HOST:]PORT`` and the loopback rule, without importing aiohttp (the CLI parses early)."""

from __future__ import annotations

from sio_sniffer.addresses import split_host_port

DEFAULT_HOST = "127.0.0.1"
# Only these names never need a token: anything else (0.0.0.0, a LAN address, 127.0.0.2, a host
# name) may be reachable by others, so the page then asks for one.
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def is_loopback(host: str) -> bool:
    return host.strip("[]").lower() in LOOPBACK


def parse_ui_address(value: str) -> tuple[str, int]:
    """``PORT``, ``:PORT``, ``HOST:PORT`` or ``[V6]:PORT``; the host defaults to 127.0.0.1."""
    host, port = split_host_port(value, "8767, 127.0.0.1:8767 or [::1]:8767")
    return host or DEFAULT_HOST, port
