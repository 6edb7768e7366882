"""The cluster view: what the other nodes delivered and what the adapter carried.

With ``--cluster`` the sniffer hears (as records, see :mod:`sio_sniffer.model.cluster`) every
emit a node published on the app's adapter channel, every delivery a peer sniffer saw on its
node, and which clients each node has. An expectation opened here is then closed by a delivery
on any node, and one that no node delivered is explained by node: this node never published it
on the adapter, or it did and no client of the cluster received it, or the view was off (Redis
unreachable) so nothing can be said of the other nodes.

Deliveries and emits name an event by the digests of its scalars: an expectation is covered by
one that carries the digests of all its anchors (its most distinctive values).
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from sio_sniffer.analysis import payload
from sio_sniffer.analysis.correlate import Correlator, Expectation
from sio_sniffer.model import Record
from sio_sniffer.model import cluster as C
from sio_sniffer.model import flags as F

ANCHORS = 8
# How many recent deliveries and emits a judgement may look through.
MAX_RECENT = 4096
# A fact is stamped when it reaches this sniffer, with the traffic's clock: one may be stamped
# a little before the ingest it answers, when Redis beat the copies of the ingest to the
# observer. This much earlier still counts.
ARRIVAL_SLACK = 0.5
MAX_NODES = 64


@dataclass(slots=True)
class Fact:
    """A delivery on another node, or an emit on the adapter."""

    ts: float
    nsp: str | None
    name: str | None
    digests: frozenset[str]
    node: str  # the peer sniffer's node; for an emit the adapter's host id
    room: Any = None


class ClusterView:
    """The facts from the other nodes (bounded) and the judgement they allow."""

    def __init__(self, node: str, correlator: Correlator) -> None:
        self.node = node
        self.correlator = correlator
        self.deliveries: deque[Fact] = deque(maxlen=MAX_RECENT)
        self.emits: deque[Fact] = deque(maxlen=MAX_RECENT)
        self.nodes: OrderedDict[str, dict[str, int]] = OrderedDict()
        # Open expectations under the digest of one of their anchors (a covering fact carries
        # them all): a delivery finds its candidates without walking every open expectation.
        self.by_digest: dict[str, dict[int, None]] = {}
        # Expectations of this node closed by another node's deliveries, by node.
        self.delivered_elsewhere: Counter[str] = Counter()
        self.adapter_emits = 0
        self.state: str | None = None
        # When the view went off, and the spans it was off: (start, end).
        self.off_since: float | None = None
        self.off_spans: deque[tuple[float, float]] = deque(maxlen=64)

    def watch(self, exp: Expectation) -> None:
        wanted = self.anchors(exp)
        if wanted:
            self.by_digest.setdefault(next(iter(sorted(wanted))), {})[exp.id] = None

    def anchors(self, exp: Expectation) -> frozenset[str]:
        """The digests a fact must carry to be ``exp`` (cached on it)."""
        cached = exp.extra.get("cluster_anchors")
        if cached is None:
            cached = frozenset(C.digest(a) for a in
                               payload.anchors(payload.leaves(exp.target), ANCHORS))
            exp.extra["cluster_anchors"] = cached
        return cached

    def covers(self, fact: Fact, exp: Expectation) -> bool:
        wanted = self.anchors(exp)
        if not wanted or not wanted <= fact.digests or fact.ts < exp.ts - ARRIVAL_SLACK:
            return False
        # A client event comes out under its own name unless a rule renames it.
        return exp.source != "event" or exp.rule is not None or fact.name == exp.name

    def delivered(self, record: Record) -> list[tuple[Expectation, Fact]]:
        """A peer delivered an event: the open expectations it closes, with it."""
        fact = Fact(record.ts, record.nsp, record.name,
                    frozenset(record.get("digests") or ()), str(record.get("node")))
        self.deliveries.append(fact)
        closed = []
        for d in fact.digests:
            ids = self.by_digest.get(d)
            if not ids:
                continue
            for exp_id in list(ids):
                exp = self.correlator.open.get(exp_id)
                if exp is None:
                    del ids[exp_id]
                elif self.covers(fact, exp):
                    del ids[exp_id]
                    closed.append((exp, fact))
            if not ids:
                del self.by_digest[d]
        return closed

    def emitted(self, record: Record) -> None:
        self.adapter_emits += 1
        self.emits.append(Fact(record.ts, record.nsp, record.name,
                               frozenset(record.get("digests") or ()), str(record.get("host")),
                               room=record.get("room")))

    def presence(self, record: Record) -> None:
        node = str(record.get("node"))
        self.nodes[node] = dict(record.get("clients") or {})
        self.nodes.move_to_end(node)
        while len(self.nodes) > MAX_NODES:
            self.nodes.popitem(last=False)

    def changed(self, record: Record) -> None:
        state = record.get("state")
        if state == "off" and self.off_since is None:
            self.off_since = record.ts
        elif state == "on" and self.off_since is not None:
            self.off_spans.append((self.off_since, record.ts))
            self.off_since = None
        self.state = state

    def was_off(self, start: float, end: float) -> bool:
        """Whether the view was off at some time between ``start`` and ``end``."""
        if self.off_since is not None and self.off_since <= end:
            return True
        return any(a <= end and b >= start for a, b in self.off_spans)

    def delivered_late(self, exp: Expectation, ts: float) -> Fact | None:
        """A delivery heard before ``exp`` was watched (Redis beat the ingest's copies)."""
        for fact in reversed(self.deliveries):
            if fact.ts < exp.ts - ARRIVAL_SLACK:
                break
            if fact.ts <= ts and self.covers(fact, exp):
                return fact
        return None

    def cause(self, exp: Expectation, nsp: str, ts: float,
              fields: dict[str, Any]) -> tuple[str, str, str]:
        """``(code, cause, hint)`` for ``exp``, delivered to nobody here nor on any node."""
        others = {n: c.get(nsp, 0) for n, c in self.nodes.items() if n != self.node}
        fields["cluster_nodes"] = others
        elsewhere = "; ".join(f"node {n} had {c} client(s) on {nsp}"
                              for n, c in list(others.items())[:6]) or "no other node's sniffer "\
            "was heard from"
        if self.was_off(exp.ts, ts):
            return (F.LOST_CLUSTER_OFF,
                    f"nobody on node {self.node} received it, and the cluster view was off "
                    f"(Redis unreachable), so deliveries on other nodes could not be seen",
                    "bring Redis back (or point --cluster at the one the app uses): the "
                    "sniffers then judge the cluster again")
        emit = next((f for f in reversed(self.emits)
                     if exp.ts - ARRIVAL_SLACK <= f.ts <= ts and self.covers(f, exp)), None)
        if emit is None:
            fields["adapter_emits"] = self.adapter_emits
            return (F.LOST_NODE_NOT_EMITTED,
                    f"node {self.node} never emitted it: nothing carrying it was published on "
                    f"the adapter's channel, and no client on any node received it ({elsewhere})",
                    f"the server on node {self.node} skipped this event: look in its log for an "
                    f"error in the handler at that time, and for a condition (a filter, a dedupe, "
                    f"a rate limit, a missing await) that drops it")
        fields["adapter"] = {"host": emit.node, "room": emit.room, "name": emit.name,
                             "nsp": emit.nsp}
        room = f" to room {emit.room!r}" if emit.room else ""
        return (F.LOST_CLUSTER_NOT_DELIVERED,
                f"node {self.node} emitted it ({emit.name!r} on {emit.nsp}{room}, adapter host "
                f"{emit.node[:12]}), and no client on any node received it ({elsewhere})",
                "the emit reaches nobody: check its room/to= against the rooms the dashboards "
                "join on each node, and that every node subscribes to the same adapter channel")

    def summary(self) -> dict[str, Any]:
        return {"node": self.node, "state": self.state, "nodes": dict(self.nodes),
                "delivered_elsewhere": dict(self.delivered_elsewhere),
                "adapter_emits": self.adapter_emits,
                "off_spans": len(self.off_spans) + (self.off_since is not None)}
