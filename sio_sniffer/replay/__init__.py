"""Replay a capture: re-drive the captured clients against a live server, or play the server side.

``replay FILE --target URL`` runs the capture through the same pipeline as the live proxy, turns
each captured Engine.IO session into a script (namespaces, each joined when the captured client
joined it, auth, client emits with or without acks, answers to server acks) and each non-Engine.IO
request (hook POSTs) into an HTTP step, and plays all of them in their captured order with the
original timing scaled by ``--speed``. One python-socketio ``AsyncClient`` per captured session; it
answers pings itself. Then, per captured client, the events (and acks) the server sent in the
capture are compared with those it sent in the replay: missing, extra, renamed, changed. A value
holding a captured sid that equals its replayed twin once the sid is mapped to the replay's is
noise, the values of the ``--ignore`` keys are not compared, and values that differ as noise does
(times, UUIDs, random tokens, values that changed on every event of their kind in the capture or
between the two runs of ``--twice``: see :mod:`sio_sniffer.replay.noise`) are reported apart and do
not fail the replay unless ``--strict``.

Auth: a capture written without ``--show-secrets`` holds only fingerprints of the CONNECT auth,
so such a replay needs ``--auth JSON`` from the user; with secrets, the captured auth is reused.

``replay FILE --serve --listen HOST:PORT`` is the other direction: a python-socketio server
that, to every client that connects to a namespace, emits what the captured server sent to one
captured client on that namespace, in order and with the captured timing, and answers client
emits with the captured acks. A dashboard bug can then be reproduced without the real system.
"""

from __future__ import annotations

from sio_sniffer.replay.clients import HOP_HEADERS, replay
from sio_sniffer.replay.diff import Change, Difference, ReplayResult, diff, normalise
from sio_sniffer.replay.noise import Noise
from sio_sniffer.replay.script import ClientScript, Observed, Script, Step, build_script
from sio_sniffer.replay.serve import ServedCapture

__all__ = ["HOP_HEADERS", "Change", "ClientScript", "Difference", "Noise", "Observed",
           "ReplayResult", "Script", "ServedCapture", "Step", "build_script", "diff", "normalise",
           "replay"]
