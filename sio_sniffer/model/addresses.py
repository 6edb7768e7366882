"""The loopback rule, one for every listener (proxy, live page, Admin UI, serve, replay --serve).

A loopback address is reachable only from this machine, so a page served there needs no token;
anything else (0.0.0.0, a LAN address, a host name other than ``localhost``) may be reachable by
others, and the listener then asks for credentials.
"""

from __future__ import annotations

import ipaddress

DEFAULT_HOST = "127.0.0.1"
# Where the diagnostic commands look when given no URL: claude-mpm's monitor.
DEFAULT_SERVER_URL = "http://localhost:8765"


def is_loopback(host: str) -> bool:
    """``127.0.0.0/8``, ``::1`` (bracketed or not) and ``localhost``; nothing else."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False
