"""The cluster vocabulary: what the sniffers of one cluster tell each other through Redis.

The cluster layer reads the app's adapter channel and the sniffers' own channel and hands the
analysis these records; the analysis never touches Redis. An event is named on the wire by the
digests of its scalars (not its payload), so a delivery can be recognised on another node
without shipping what the dashboards received.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

# Records the cluster link injects into the analysis (they are logged like any other).
CLUSTER_DELIVERED = "cluster.delivered"  # a peer sniffer saw an event delivered to its clients
CLUSTER_EMIT = "cluster.emit"  # a node published an emit on the adapter's channel
CLUSTER_NODE = "cluster.node"  # a peer sniffer's presence: its node name and clients per nsp
CLUSTER_STATE = "cluster.state"  # the shared view went off (Redis unreachable) or came back
# What a capture keeps of the cluster view (as record lines) so that `report` judges as live.
CLUSTER_FACTS = frozenset({CLUSTER_DELIVERED, CLUSTER_EMIT, CLUSTER_NODE, CLUSTER_STATE})

# Cookies load balancers set to pin a client to one node (AWS ALB, NGINX ingress, HAProxy,
# nginx sticky, Traefik, socket.io's own `cookie` option): seen in traffic, they say the server
# behind the sniffer is one node of several. Names only are ever read, never the values.
STICKY_COOKIES = frozenset({"awsalb", "awsalbcors", "awsalbtg", "awsalbtgcors", "ingresscookie",
                            "serverid", "route", "io", "_traefik_sticky", "gclb"})

# A delivery names at most this many distinct scalars: enough for the anchors of any payload
# (the analysis needs only the few most distinctive of an ingested event), bounded on the wire.
MAX_DIGESTS = 256
DIGEST_BYTES = 6


def sticky_cookies(headers: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """The sticky-session cookie names in ``Cookie`` and ``Set-Cookie`` headers."""
    found: dict[str, None] = {}
    for key, value in headers:
        key = key.lower()
        if key == "cookie":
            names = [part.split("=", 1)[0] for part in value.split(";")]
        elif key == "set-cookie":
            names = [value.split("=", 1)[0]]
        else:
            continue
        for name in names:
            name = name.strip()
            if name.lower() in STICKY_COOKIES:
                found[name] = None
    return tuple(found)


def _canonical(value: Any) -> bytes:
    """One spelling per value as the correlation compares them: 1 and 1.0 alike (a JavaScript
    server re-serialises floats), True apart from 1."""
    if value is True or value is False:
        return b"b1" if value else b"b0"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and (math.isnan(value) or math.isinf(value)
                                         or not value.is_integer()):
            return b"n" + repr(value).encode()
        return b"n%d" % int(value)
    if isinstance(value, str):
        return b"s" + value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray)):
        return b"x" + bytes(value)
    if value is None:
        return b"z"
    return b"?" + repr(value).encode()


def digest(value: Any) -> str:
    """The wire name of one scalar."""
    return hashlib.blake2b(_canonical(value), digest_size=DIGEST_BYTES).hexdigest()


def digests(value: Any, limit: int = MAX_DIGESTS) -> list[str]:
    """The distinct digests of the scalars in ``value`` (dict values and list items, walked
    depth first), in order, at most ``limit``: the names of what an event carried."""
    out: dict[str, None] = {}
    stack = [value]
    visited = 0
    while stack and len(out) < limit and visited < 8 * limit:
        node = stack.pop()
        visited += 1
        if isinstance(node, dict):
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
        else:
            out[digest(node)] = None
    return list(out)
