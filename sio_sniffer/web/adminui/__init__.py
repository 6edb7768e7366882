"""Speak to the official Socket.IO Admin UI (npm ``@socket.io/admin-ui``) from what the wire shows.

The Admin UI only knows servers instrumented with ``instrument(io)``; most are not. The bridge
is a small Socket.IO server with the ``/admin`` namespace that speaks the same protocol (the
``ServerEvents`` of the package's ``typed-events``), fed by the sniffer's records: each socket
the proxy saw connect is a socket (id = Socket.IO sid, clientId = Engine.IO sid), each inferred
room (clients the server addressed together) is a room, events in and out are
``event_received`` / ``event_sent``. It is read-only: only ``AGGREGATED_EVENTS`` and
``ALL_EVENTS`` are advertised, so the UI hides its emit/join/leave/disconnect buttons, and those
requests are refused if sent anyway: the sniffer is an observer and never injects traffic.

Records arrive on the sniffer's loop through :meth:`AdminUIBridge.record` (a sink) and only
update tables and per-admin queues; the sending happens in one task per connected Admin UI, so
a slow browser never delays the sniffer. Secrets (auth payloads, cookies, authorization headers,
token-like query parameters) leave only as ``sha256:`` fingerprints.

The protocol's tables and message shapes are in :mod:`.protocol`, the server in :mod:`.bridge`,
what the user chooses in :mod:`.options` and the self-hosted UI in :mod:`.static`.
"""

from sio_sniffer.web.adminui.bridge import AdminUIBridge
from sio_sniffer.web.adminui.options import AdminUIError, AdminUIOptions
from sio_sniffer.web.adminui.static import find_ui_dist

__all__ = ["AdminUIBridge", "AdminUIError", "AdminUIOptions", "find_ui_dist"]
