"""In→out correlation: every ingested event waits for an emitted event that carries it.

An expectation opens for each hook POST to an ingest path and each event a client emits (without
an ack id: the ack is that event's answer). An outgoing event closes the oldest open expectation
whose payload it contains (see :mod:`payload`), or whose ``[[rule]]`` it satisfies. Lookups go
through an index of distinctive scalars, so an outgoing event costs a walk of its own payload, not
a scan of every open expectation.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from sio_sniffer.analysis import payload
from sio_sniffer.analysis.config import MISSING, Rule

# Expectations with no distinctive scalar are compared with every outgoing event: keep it cheap.
MAX_UNANCHORED_CHECKS = 64


@dataclass(slots=True)
class Expectation:
    """An ingested event waiting to come out."""

    id: int
    ts: float
    deadline: float
    source: str  # "http" or "event"
    payload: Any
    target: Any  # what must reappear: the innermost dict, or the payload itself
    anchors: tuple[payload.Scalar, ...]
    conn: str | None = None
    eio_sid: str | None = None
    # Who POSTed it (address and user agent): a hook has no Engine.IO session to name it by.
    sender: str | None = None
    nsp: str | None = None
    name: str | None = None
    path: str | None = None
    seq: int | None = None
    rule: int | None = None
    rule_key: tuple[str, ...] | None = None
    structural: bool = True
    status: int | None = None
    duration_ms: float | None = None
    echoed: bool = False
    # The name it came back to its sender under: the same name is an echo, another one an
    # answer (a request and its reply, such as ping and pong).
    echo_name: str | None = None
    fields: tuple[str, ...] = ()  # required fields (profile) the ingested payload carried
    extra: dict[str, Any] = field(default_factory=dict)


class Correlator:
    """Open expectations, their indexes and their deadlines (all bounded)."""

    def __init__(self, rules: tuple[Rule, ...], max_open: int) -> None:
        self.rules = rules
        self.max_open = max_open
        self.open: OrderedDict[int, Expectation] = OrderedDict()
        self.by_anchor: dict[payload.Scalar, dict[int, None]] = {}
        self.unanchored: OrderedDict[int, None] = OrderedDict()
        self.by_rule: dict[tuple[int, tuple[str, ...]], OrderedDict[int, None]] = {}
        self.by_request: OrderedDict[tuple[str | None, int | None], int] = OrderedDict()
        self.deadlines: list[tuple[float, int]] = []
        self.next_id = 1
        self.dropped = 0

    def rule_for_http(self, path: str) -> int | None:
        for i, rule in enumerate(self.rules):
            if rule.accepts_in_http(path):
                return i
        return None

    def rule_for_event(self, nsp: str | None, name: str | None) -> int | None:
        for i, rule in enumerate(self.rules):
            if rule.accepts_in_event(nsp, name):
                return i
        return None

    def add(self, exp: Expectation) -> list[Expectation]:
        """Open ``exp``; returns expectations evicted because the table was full."""
        self.open[exp.id] = exp
        if len(exp.anchors) > 1:
            # Index under the least shared of the candidates: a field every event carries (a
            # cwd, a padding) would otherwise put every expectation behind one anchor, and each
            # outgoing event would be checked against all of them.
            exp.anchors = (min(exp.anchors, key=lambda a: len(self.by_anchor.get(a, ()))),)
        for anchor in exp.anchors:
            self.by_anchor.setdefault(anchor, {})[exp.id] = None
        if exp.structural and not exp.anchors:
            self.unanchored[exp.id] = None
        if exp.rule is not None and exp.rule_key is not None:
            self.by_rule.setdefault((exp.rule, exp.rule_key), OrderedDict())[exp.id] = None
        if exp.source == "http":
            self.by_request[(exp.conn, exp.seq)] = exp.id
            while len(self.by_request) > self.max_open:
                self.by_request.popitem(last=False)
        heapq.heappush(self.deadlines, (exp.deadline, exp.id))
        evicted = []
        while len(self.open) > self.max_open:
            oldest = next(iter(self.open.values()))
            self.remove(oldest)
            if "lost_code" not in oldest.extra:  # a judged one only stops being watched
                self.dropped += 1
            evicted.append(oldest)
        if len(self.deadlines) > 4 * self.max_open + 64:
            self.deadlines = [d for d in self.deadlines if d[1] in self.open]
            heapq.heapify(self.deadlines)
        return evicted

    def waiting(self) -> int:
        """Open expectations not yet judged (those judged lost and watched for a late delivery
        are not counted)."""
        return sum("lost_code" not in exp.extra for exp in self.open.values())

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def remove(self, exp: Expectation) -> None:
        self.open.pop(exp.id, None)
        if exp.source == "http" and self.by_request.get((exp.conn, exp.seq)) == exp.id:
            del self.by_request[(exp.conn, exp.seq)]
        for anchor in exp.anchors:
            ids = self.by_anchor.get(anchor)
            if ids is not None:
                ids.pop(exp.id, None)
                if not ids:
                    del self.by_anchor[anchor]
        self.unanchored.pop(exp.id, None)
        if exp.rule is not None and exp.rule_key is not None:
            key = (exp.rule, exp.rule_key)
            ids_by_rule = self.by_rule.get(key)
            if ids_by_rule is not None:
                ids_by_rule.pop(exp.id, None)
                if not ids_by_rule:
                    del self.by_rule[key]

    def for_request(self, conn: str | None, seq: int | None) -> Expectation | None:
        exp_id = self.by_request.get((conn, seq))
        return self.open.get(exp_id) if exp_id is not None else None

    def next_due(self) -> float:
        """The earliest deadline of an open expectation (or of one closed since: harmless)."""
        return self.deadlines[0][0] if self.deadlines else math.inf

    def due(self, now: float) -> list[Expectation]:
        """Expectations whose deadline has passed, removed from the table, oldest first."""
        out = []
        while self.deadlines and self.deadlines[0][0] <= now:
            _, exp_id = heapq.heappop(self.deadlines)
            exp = self.open.get(exp_id)
            if exp is not None:
                self.remove(exp)
                out.append(exp)
        return out

    def match(self, nsp: str | None, name: str | None, args: Any, ts: float,
              recipient: str | None) -> tuple[Expectation | None, list[Expectation]]:
        """The oldest open expectation this outgoing event closes, and the ones it only echoed.

        An event matching an expectation but delivered to the expectation's own sender is an
        echo: the expectation stays open (only the sender got it so far) and is marked.
        """
        if not self.open:
            return None, []
        out_core = payload.core(args)
        for i, rule in enumerate(self.rules):
            if not (rule.match or rule.out_name) or not rule.accepts_out(nsp, name):
                continue
            key = rule_key(rule, out_core, inbound=False)
            if key is None:
                continue
            ids = self.by_rule.get((i, key))
            if ids:
                exp = self.open[next(iter(ids))]
                if exp.ts <= ts and exp.eio_sid != recipient:
                    return exp, []
        candidates: dict[int, None] = {}
        by_anchor = self.by_anchor
        if by_anchor:
            # Only anchors are keys, so every scalar is looked up as it is (no is_anchor test):
            # leaves are str, numbers, bool, None or bytes, all hashable. Lookups compare with
            # ==, as covers() does: a 1 finds an expectation anchored on 1.0, which a
            # JavaScript server re-serialises as 1 (True finds it too; covers() then says no).
            for scalar in payload.leaves(args):
                anchored = by_anchor.get(scalar)
                if anchored:
                    candidates.update(anchored)
        for n, exp_id in enumerate(self.unanchored):
            if n >= MAX_UNANCHORED_CHECKS:
                break
            candidates[exp_id] = None
        echoed = []
        # Open expectations before ones already judged lost (watched for a late delivery): an
        # event closes the one still waiting for it, not a stale twin.
        for exp_id in sorted(candidates, key=lambda i: ("lost_code" in self.open[i].extra, i)):
            exp = self.open[exp_id]
            if exp.ts > ts or not exp.structural:
                continue
            if exp.rule is not None and not self.rules[exp.rule].accepts_out(nsp, name):
                continue
            if payload.contains(args, exp.target):
                if recipient is not None and recipient == exp.eio_sid:
                    exp.echoed = True
                    if exp.echo_name is None:
                        exp.echo_name = name
                    echoed.append(exp)
                    continue
                return exp, echoed
        return None, echoed


def rule_key(rule: Rule, value: Any, inbound: bool) -> tuple[str, ...] | None:
    """The values of a rule's match paths in a payload (as canonical text), or None if absent."""
    parts = []
    for in_path, out_path in rule.match:
        found = (in_path if inbound else out_path).get(value)
        if found is MISSING:
            return None
        parts.append(payload.canonical(found).decode(errors="replace"))
    return tuple(parts)
