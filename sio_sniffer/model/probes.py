"""How sio-sniffer marks the test events it sends into a real server, and how its own answers
read.

``diagnose`` POSTs probe hook events that every open dashboard shows and a running proxy logs;
these markers let the analysis (and a person reading a dashboard) tell them from real Claude
Code activity. The sniffer's own 502 starts with :data:`SNIFFER_502_PREFIX`, so a client can
tell "the sniffer could not reach the server" from a server that answers 502 itself.
"""

from __future__ import annotations

PROBE_SOURCE = "sio-sniffer diagnose"  # the ``source`` field of every diagnose probe event
PROBE_SESSION_PREFIX = "sio-sniffer-diagnose-"  # + a nonce per diagnose run: its session_id
SNIFFER_502_PREFIX = "sio-sniffer: "  # the text body of the 502 the sniffer answers itself


def probe_session_id(nonce: str) -> str:
    """The session id one diagnose run gives its probe events."""
    return PROBE_SESSION_PREFIX + nonce
