"""Flag records: one observation that something in the event flow is broken, and how to fix it.

A flag is a :class:`~sio_sniffer.model.Record` with ``event="flag"`` and, in ``extra``: ``flag``
(the kind below), ``code`` (a machine-readable cause), ``cause`` (a sentence naming what was seen)
and ``hint`` (one line: the fix). The usual context fields (conn, eio_sid, nsp, name, ...) say
where.
"""

from __future__ import annotations

from typing import Any

from sio_sniffer.model import FLAG, Record

LOST = "lost"
FIELDS_LOST = "fields_lost"
CONNECT_UNANSWERED = "connect_unanswered"
CONNECT_ERROR = "connect_error"
ACK_MISSING = "ack_missing"
UNKNOWN_SID = "unknown_sid"
PING_TIMEOUT = "ping_timeout"
UPGRADE_FAILED = "upgrade_failed"
DUPLICATE = "duplicate"
INGEST_REJECTED = "ingest_rejected"
SLOW_INGEST = "slow_ingest"
PAYLOAD_TOO_LARGE = "payload_too_large"
UNLISTENED_EVENT = "unlistened_event"
DECODE_ERROR = "decode_error"
PARTIAL_BROADCAST = "partial_broadcast"
NEVER_RELAYED = "never_relayed"
LATE = "late"
NO_HOOKS = "no_hooks"
BYPASSED = "bypassed"

KINDS = (LOST, NEVER_RELAYED, FIELDS_LOST, CONNECT_UNANSWERED, CONNECT_ERROR, ACK_MISSING,
         UNKNOWN_SID, PING_TIMEOUT, UPGRADE_FAILED, DUPLICATE, INGEST_REJECTED, SLOW_INGEST,
         PAYLOAD_TOO_LARGE, UNLISTENED_EVENT, DECODE_ERROR, PARTIAL_BROADCAST, LATE, NO_HOOKS,
         BYPASSED)

# How bad each kind is, carried on every flag (``severity``) so the live page, ``--pretty`` and a
# user's ``jq`` agree: a problem is data or a session that did not get through; a warning is a
# degraded or suspicious path that still delivered (or may be deliberate, like a refusal); info
# is a fact worth knowing that breaks nothing.
PROBLEM = "problem"
WARNING = "warning"
INFO = "info"
SEVERITY = {
    LOST: PROBLEM, NEVER_RELAYED: PROBLEM, FIELDS_LOST: PROBLEM, CONNECT_UNANSWERED: PROBLEM,
    ACK_MISSING: PROBLEM, UNKNOWN_SID: PROBLEM, PING_TIMEOUT: PROBLEM, INGEST_REJECTED: PROBLEM,
    PAYLOAD_TOO_LARGE: PROBLEM, PARTIAL_BROADCAST: PROBLEM, DECODE_ERROR: PROBLEM,
    CONNECT_ERROR: WARNING, UPGRADE_FAILED: WARNING, DUPLICATE: WARNING, SLOW_INGEST: WARNING,
    LATE: WARNING, NO_HOOKS: WARNING, BYPASSED: WARNING,
    UNLISTENED_EVENT: INFO,
}

# Causes of a ``lost`` flag, judged from the state when the deadline passed.
LOST_INGEST_ERROR = "ingest_error"
LOST_UPSTREAM_DOWN = "upstream_down"  # the sniffer could not reach the server
LOST_TWO_SERVERS = "two_servers"  # two servers share the port: sessions were disowned
LOST_HOOK_GAVE_UP = "hook_gave_up"  # the hook hung up before the server answered
LOST_NO_RECEIVERS = "no_receivers"
LOST_NAMESPACE = "namespace"
LOST_RECONNECTING = "receiver_reconnecting"
LOST_ECHO_ONLY = "echo_only"
LOST_EMITTED_OTHER = "emitted_other"
LOST_NOT_DELIVERED = "not_delivered"
LOST_NOT_EMITTED = "not_emitted"
LOST_UNKNOWN = "unknown"
# With --cluster: the node behind this sniffer published nothing like it on the adapter's
# channel; it did, and no sniffer of the cluster saw any client receive it; the cluster view was
# off (Redis unreachable), so receivers on other nodes could not be seen.
LOST_NODE_NOT_EMITTED = "node_not_emitted"
LOST_CLUSTER_NOT_DELIVERED = "cluster_not_delivered"
LOST_CLUSTER_OFF = "cluster_off"
# Without --cluster: nobody here received it while the traffic shows a cluster (sticky-session
# cookies): the receivers may well be on another node.
LOST_OTHER_NODE = "other_node"

# Causes of a ``never_relayed`` flag: a client event kind the server has never relayed, and
# while one came in the server sent nothing to anyone else.
NEVER_RELAYED_NOBODY_RECEIVED = "nobody_received"
NEVER_RELAYED_NOBODY_ELSE = "nobody_else"

# Causes of a ``connect_error`` flag: the server's own answer for a namespace it does not have
# (Node socket.io "Invalid namespace", python-socketio "Unable to connect"), or any other refusal
# (middleware or connect handler: usually auth).
CONNECT_ERROR_NAMESPACE = "namespace"
CONNECT_ERROR_REFUSED = "refused"
NAMESPACE_REFUSALS = ("invalid namespace", "unable to connect")

_CONTEXT = ("conn", "eio_sid", "transport", "dir", "nsp", "sio_sid", "name", "ack_id")


def make_flag(ts: float, kind: str, code: str, cause: str, hint: str,
              where: Record | None = None, **fields: Any) -> Record:
    """A flag record; context comes from ``where`` unless given in ``fields`` by name."""
    context: dict[str, Any] = {}
    if where is not None:
        context = {key: getattr(where, key) for key in _CONTEXT}
    for key in _CONTEXT:
        if key in fields:
            context[key] = fields.pop(key)
    extra = {"flag": kind, "severity": SEVERITY[kind], "code": code, "cause": cause,
             "hint": hint}
    extra.update({k: v for k, v in fields.items() if v is not None})
    return Record(event=FLAG, ts=ts, extra=extra, **context)
