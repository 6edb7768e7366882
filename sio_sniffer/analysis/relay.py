"""The relay: ingested events (hook POSTs, client events) expected to come out again.

Each opens an expectation in the :class:`Correlator`; an outgoing event that carries it closes it
(a delivery back to the sender only closes it once someone else got it too); past its deadline
it is judged lost (see :mod:`lost`). A client event without a ``[[rule]]`` is only flagged lost
once the server has relayed that name before (or with ``strict_client_events``); otherwise it is
counted as never relayed.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from typing import Any

from sio_sniffer import model
from sio_sniffer.analysis import payload
from sio_sniffer.analysis.bookkeeping import (
    Latencies,
    Part,
    Shared,
    bound_counter,
)
from sio_sniffer.analysis.cluster import ClusterView, Fact
from sio_sniffer.analysis.config import Rule
from sio_sniffer.analysis.correlate import Correlator, Expectation, rule_key
from sio_sniffer.analysis.lost import Emission, LostJudge
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F
from sio_sniffer.model.cluster import CLUSTER_DELIVERED
from sio_sniffer.model.probes import PROBE_SOURCE

# How many distinctive scalars of an ingested payload are offered to the correlator, which
# indexes the expectation under the least shared of them.
ANCHOR_CHOICES = 8
# Hook-shaped events that no ingest here explains, before the hooks are said to bypass the
# sniffer; and how long after a client connects what it gets may be history (replayed events).
BYPASS_AFTER = 2
HISTORY_SETTLE = 1.0
# How many events of a kind must come in, each with the server silent to everyone else, before
# the kind is flagged never_relayed.
NEVER_RELAYED_AFTER = 2


class Relay(Part):
    """Opens, matches and judges expectations; keeps the recent emissions a lost one is
    compared with, and the relay counters of the summary."""

    def __init__(self, shared: Shared, correlator: Correlator,
                 server_nsps: OrderedDict[str, None]) -> None:
        super().__init__(shared)
        self.correlator = correlator
        self.recent: deque[Emission] = deque(maxlen=self.config.max_recent_emits)
        self.relaying: OrderedDict[tuple[str | None, str | None], str | None] = OrderedDict()
        self.cluster = (ClusterView(self.config.cluster_node, correlator)
                        if self.config.cluster_node else None)
        self.judge = LostJudge(self.config, correlator.rules, self.sessions, server_nsps,
                               self.recent, self.relaying, self.cluster)
        self.unrelayed: Counter[str] = Counter()
        # Client event kinds flagged never_relayed (one flag per kind; the rest are counted in
        # ``never_relayed``) until one of them comes out.
        self.never_flagged: OrderedDict[str, None] = OrderedDict()
        self.never_relayed: Counter[str] = Counter()
        self.lost_causes: Counter[str] = Counter()
        self.latency = Latencies(self.config.latency_samples)
        self.opened = 0
        self.matched = 0
        self.late = 0
        self.last_ingest = -math.inf
        self.bypassed = 0
        self.probes_lost = 0
        # Lost expectations still matchable, oldest first (config.late_window, max_late_watch).
        self.watched: OrderedDict[int, Expectation] = OrderedDict()

    def expect_event(self, record: Record) -> None:
        """A client's event: expected out unless it asks for an ack (its answer) without a
        rule."""
        rule = self.correlator.rule_for_event(record.nsp, record.name)
        if record.ack_id is not None and rule is None:
            return
        self.expect(record, "event", rule)

    def expect(self, record: Record, source: str, rule_index: int | None,
               path: str | None = None) -> None:
        body = (payload.main_argument(record.args) if source == "event"
                else payload.core(record.args))
        chain = payload.dict_chain(body)
        target: Any = chain[-1] if chain else body
        scalars = payload.leaves(target)
        structural = _matchable(target, scalars)
        rule = self.correlator.rules[rule_index] if rule_index is not None else None
        key = None
        if rule is not None and (rule.match or rule.out_name):
            key = rule_key(rule, body, inbound=True)
        if not structural and key is None:
            return
        fields: tuple[str, ...] = ()
        if self.profile is not None and self.profile.required_fields:
            fields = tuple(f for f in self.profile.required_fields
                           if payload.has_value(body, f))
        within = rule.within if rule is not None and rule.within is not None else None
        exp = Expectation(
            id=self.correlator.new_id(), ts=record.ts,
            deadline=record.ts + (within if within is not None else self.config.deadline),
            source=source, payload=body, target=target,
            anchors=tuple(payload.anchors(scalars, ANCHOR_CHOICES)) if structural else (),
            conn=record.conn, eio_sid=record.eio_sid if source == "event" else None,
            sender=_sender(record) if source == "http" else None,
            nsp=record.nsp, name=record.name, path=path, seq=record.get("seq"),
            rule=rule_index, rule_key=key, structural=structural, fields=fields)
        self.opened += 1
        if source == "http":
            self.last_ingest = record.ts
            if _is_probe(body):
                exp.extra["probe"] = True
        self.correlator.add(exp)
        if self.config.causality_tolerance > 0 and self._came_out_before(exp, rule):
            return
        if self.cluster is not None:
            self.cluster.watch(exp)
        self.wake_by(exp.deadline)

    def _came_out_before(self, exp: Expectation, rule: Rule | None) -> bool:
        """Within the causality tolerance, an emission stamped just before ``exp`` came in
        (another capture's clock) that carries it closes it."""
        earliest = exp.ts - self.config.causality_tolerance
        for emission in reversed(self.recent):
            if emission.ts < earliest:
                break
            if (emission.matched or emission.recipient == exp.eio_sid or not exp.structural
                    or (rule is not None and not rule.accepts_out(emission.nsp, emission.name))
                    or not payload.contains(emission.args, exp.target)):
                continue
            emission.matched = True
            self._matched(exp, Record(model.SIO_EVENT, emission.ts, nsp=emission.nsp,
                                      name=emission.name, args=emission.args, dir="out"))
            return True
        return False

    def emitted(self, record: Record, recipient: str | None) -> tuple[list[int], bool]:
        """An outgoing event first delivered to ``recipient``: closes the expectation it
        carries. Returns the ids of the expectations it only echoed back to their sender, and
        whether it closed one."""
        emission = Emission(record.ts, record.nsp, record.name, record.args, recipient)
        self.recent.append(emission)
        if not self.correlator.open:
            self._unexplained(record, recipient)
            return [], False
        exp, echoed = self.correlator.match(record.nsp, record.name, record.args, record.ts,
                                            recipient)
        if exp is not None:
            emission.matched = True
            self._matched(exp, record)
        elif not echoed:
            self._unexplained(record, recipient)
        return [e.id for e in echoed], exp is not None

    def awaited(self, record: Record, recipient: str | None) -> bool:
        """Whether an open expectation waits for this very event: the same event again then
        answers a second ingest (a hook that posted the same body twice), no duplicate."""
        if not self.correlator.open:
            return False
        exp, _ = self.correlator.match(record.nsp, record.name, record.args, record.ts,
                                       recipient)
        return exp is not None

    def _unexplained(self, record: Record, recipient: str | None) -> None:
        """An outgoing event shaped like a relayed hook event (it carries the profile's
        required fields) while no hook posted here: the hooks post straight to the server."""
        profile = self.profile
        if (profile is None or not profile.ingest_paths or len(profile.required_fields) < 2
                or record.ts - self.last_ingest <= self.config.deadline):
            return
        # At the top of the payload: a history reply nests many events under one key.
        body = payload.core(record.args)
        carried = [f for f in profile.required_fields if isinstance(body, dict) and f in body]
        session = self.sessions.known(recipient)
        if len(carried) < 2 or session is None or record.ts - session.opened < HISTORY_SETTLE:
            return
        self.bypassed += 1
        if self.bypassed != BYPASS_AFTER:
            return
        self.flag(record.ts, F.BYPASSED, "hooks_elsewhere",
                  f"{session.label()} received {self.bypassed} events shaped like relayed "
                  f"hook events ({record.name!r} carrying {', '.join(carried)}) that never came "
                  f"in through this sniffer: no hook posted to {', '.join(profile.ingest_paths)} "
                  f"here in the {self.config.deadline:g} s before them",
                  "the hooks post straight to the server, past the sniffer: point them at the "
                  "sniffer's port (claude-mpm: CLAUDE_MPM_SERVER_PORT for claude-hook, "
                  "CLAUDE_MPM_SOCKETIO_PORT for the fast hook), or let the sniffer own 8765 and "
                  "move the monitor", record)

    def close_echoes(self, echo_ids: list[int], recipient: str, record: Record) -> list[int]:
        """The same emission reached ``recipient`` too: it closes the echoed expectations of
        other senders. Returns the ids still only echoed."""
        remaining = []
        for exp_id in echo_ids:
            exp = self.correlator.open.get(exp_id)
            if exp is None:
                continue
            if exp.eio_sid == recipient:
                remaining.append(exp_id)
            else:
                self.correlator.remove(exp)
                self._matched(exp, record)
        return remaining

    def delivered_elsewhere(self, record: Record) -> None:
        """A peer sniffer saw an event delivered on its node: it closes what it carries."""
        cluster = self.cluster
        if cluster is None:
            return
        for exp, fact in cluster.delivered(record):
            self._closed_elsewhere(cluster, exp, fact, record)

    def _closed_elsewhere(self, cluster: ClusterView, exp: Expectation, fact: Fact,
                          out: Record) -> None:
        cluster.delivered_elsewhere[fact.node] += 1
        # What a peer saw has no payload here: its fields are the peer's to check.
        self._matched(exp, out, check_fields=False)

    def _matched(self, exp: Expectation, out: Record, check_fields: bool = True) -> None:
        self.correlator.remove(exp)
        lost_code = exp.extra.get("lost_code")
        if lost_code is not None:
            self.watched.pop(exp.id, None)
            self._late(exp, out, lost_code)
            return
        self.matched += 1
        self.latency.add(max(0.0, out.ts - exp.ts))
        if exp.source == "event":
            self.relaying[(exp.nsp, exp.name)] = out.nsp
            self.relaying.move_to_end((exp.nsp, exp.name))
            self.bounds.bound(self.relaying, 256)
            self.never_flagged.pop(f"{exp.nsp} {exp.name}", None)
        if not check_fields:
            return
        lost = [f for f in exp.fields if not payload.has_value(out.args, f)]
        if lost:
            what = f"POST {exp.path}" if exp.source == "http" else f"{exp.name!r} from a client"
            self.flag(out.ts, F.FIELDS_LOST, "dropped",
                      f"{what} carried {', '.join(lost)}, but the relayed {out.name!r} on "
                      f"{out.nsp} lacks {'it' if len(lost) == 1 else 'them'} (missing, or null)",
                      f"keep {', '.join(lost)} when the server re-normalizes the event: the "
                      f"dashboard pairs and groups events by them", out,
                      dedupe=(out.nsp, out.name, tuple(lost)), fields=lost)

    def _late(self, exp: Expectation, out: Record, lost_code: str) -> None:
        """``exp`` was flagged lost and has come out now: count it late, and say so."""
        self.lost_causes[lost_code] -= 1
        if not self.lost_causes[lost_code]:
            del self.lost_causes[lost_code]
        self.flag.counts[F.LOST] -= 1
        self.late += 1
        after = out.ts - exp.ts
        what = self.named(exp)
        self.flag(out.ts, F.LATE, "arrived_late",
                  f"{what}, flagged lost ({lost_code}), came out {after:.2f} s after it came in, "
                  f"{after - (exp.extra['lost_at'] - exp.ts):.2f} s past the deadline, as "
                  f"{out.name!r} on {out.nsp}: a late delivery, not a loss",
                  "the server was slow to relay it (a stalled handler or event loop): answer "
                  "and relay promptly, or raise --deadline if this delay is expected", out,
                  lost_code=lost_code, after_s=round(after, 3))

    def _watch_late(self, exp: Expectation, ts: float, code: str) -> None:
        """Keep a lost expectation matchable for ``late_window`` more seconds (a stalled server
        catching up delivers it late), the newest ``max_late_watch`` of them."""
        exp.extra["lost_code"] = code
        exp.extra["lost_at"] = ts
        exp.deadline = ts + self.config.late_window
        self.correlator.add(exp)
        self.watched[exp.id] = exp
        while len(self.watched) > self.config.max_late_watch:
            _, oldest = self.watched.popitem(last=False)
            self.correlator.remove(oldest)

    def hook_gave_up(self, exp: Expectation, ts: float, cause: str, hint: str) -> None:
        """The hook hung up on ``exp``'s POST before the answer: lost now, not at the deadline."""
        self.lost_causes[F.LOST_HOOK_GAVE_UP] += 1
        self.flag(ts, F.LOST, F.LOST_HOOK_GAVE_UP, cause, hint, None, path=exp.path,
                  conn=exp.conn, dir="in", waited_s=round(ts - exp.ts, 3))

    def judge_lost(self, exp: Expectation, ts: float) -> None:
        if "lost_code" in exp.extra:
            self.watched.pop(exp.id, None)
            return  # watched for a late delivery that did not come: it stays lost
        if exp.extra.get("probe"):
            # diagnose's own test event: diagnose reports it; the proxy only counts it.
            self.probes_lost += 1
            return
        if self.cluster is not None:
            # Heard from a peer before the ingest itself was decoded here: delivered.
            fact = self.cluster.delivered_late(exp, ts)
            if fact is not None:
                self._closed_elsewhere(self.cluster, exp, fact,
                                       Record(CLUSTER_DELIVERED, fact.ts, nsp=fact.nsp,
                                              name=fact.name))
                return
        nsp = self.judge.expected_nsp(exp)
        others = [s for s in self.sessions.open.values() if s.eio_sid != exp.eio_sid]
        receivers = [s for s in others if s.connected(nsp)]
        fields: dict[str, Any] = {"expected_nsp": nsp, "waited_s": round(ts - exp.ts, 3),
                                  "ingest_status": exp.status}
        must_relay = exp.source != "event" or self._must_relay(exp)
        # Clients that connected after it came in could not have got it: an echo to a sender
        # alone at the time reached everyone there was.
        waiting = [s for s in receivers if s.nsps[nsp].since <= exp.ts]
        verdict: tuple[str, str, str, str] | None
        if exp.echoed and (not waiting or not must_relay):
            # Back to the sender only: a request answered, unless listeners waited elsewhere.
            echo = self.judge.echo_elsewhere(exp, others)
            if echo is None:
                self.matched += 1
                return
            verdict = (F.LOST, *echo)
        elif must_relay:
            verdict = (F.LOST, *self.judge.cause(exp, nsp, ts, others, receivers, fields))
        else:
            kind = f"{exp.nsp} {exp.name}"
            self.unrelayed[kind] += 1
            bound_counter(self.unrelayed, 256)
            verdict = self.judge.never_relayed(exp, ts, others, fields)
            if verdict is None:
                return
            if verdict[0] == F.NEVER_RELAYED:
                # One such event may be a request the server only consumes (a join nothing
                # follows); the second of a kind with the server silent to everyone is a relay
                # that relays nothing.
                self.never_relayed[kind] += 1
                bound_counter(self.never_relayed, 256)
                if self.never_relayed[kind] < NEVER_RELAYED_AFTER:
                    return
                if kind in self.never_flagged:
                    self.flag.suppressed[F.NEVER_RELAYED] += 1
                    return
                self.never_flagged[kind] = None
                self.bounds.bound(self.never_flagged, 256)
        flag, code, cause, hint = verdict
        what = self.named(exp)
        if flag == F.LOST:
            self.lost_causes[code] += 1
            head = f"{what} did not come out within {ts - exp.ts:g} s: "
            self._watch_late(exp, ts, code)
        else:
            head = f"{what} was never relayed: "
        self.flag(ts, flag, code, head + cause, hint, None, path=exp.path, conn=exp.conn,
                  eio_sid=exp.eio_sid, nsp=exp.nsp, name=exp.name, dir="in", **fields)

    def what(self, exp: Expectation) -> str:
        """How a person reads ``exp``: ``POST /path`` or ``'name' on /nsp``."""
        return f"POST {exp.path}" if exp.source == "http" else f"{exp.name!r} on {exp.nsp}"

    def named(self, exp: Expectation) -> str:
        """How a flag names ``exp``: ``POST /path`` or ``'name' from <client> on /nsp``."""
        if exp.source == "http":
            return self.what(exp)
        return f"{exp.name!r} from {self.sender(exp)} on {exp.nsp}"

    def sender(self, exp: Expectation) -> str:
        """Who sent ``exp``: the client's label, or the hook's address and user agent."""
        if exp.source == "event":
            return self.sessions.label(exp.eio_sid)
        return exp.sender or "?"

    def unjudged(self, now: float) -> list[dict[str, Any]]:
        """The expectations still open at ``now``, oldest first: their deadline had not come,
        so neither matched nor lost can be said of them (a capture that ends too soon)."""
        return [{"ts": exp.ts, "what": self.what(exp), "from": self.sender(exp),
                 "source": exp.source, "nsp": exp.nsp, "name": exp.name, "path": exp.path,
                 "eio_sid": exp.eio_sid, "waited_s": round(now - exp.ts, 3),
                 "deadline_s": round(exp.deadline - exp.ts, 3)}
                for exp in self.correlator.open.values() if "lost_code" not in exp.extra]

    def _must_relay(self, exp: Expectation) -> bool:
        return (self.config.strict_client_events or exp.rule is not None
                or (exp.nsp, exp.name) in self.relaying)


def _sender(record: Record) -> str:
    peer = str(record.get("peer") or "?")
    agent = record.get("user_agent")
    return f"{peer} ({agent})" if agent else peer


def _is_probe(body: Any) -> bool:
    """A test event of ``sio-sniffer diagnose`` (marked with its ``source``)."""
    return any(isinstance(d, dict) and d.get("source") == PROBE_SOURCE
               for d in payload.dict_chain(body))


def _matchable(target: Any, scalars: list[Any]) -> bool:
    """Whether a payload (whose leaves are ``scalars``) says enough to be recognised when it
    comes out again."""
    if isinstance(target, dict):
        return bool(scalars)
    if isinstance(target, list):
        return any(payload.is_anchor(v) or isinstance(v, (dict, list)) for v in target)
    return payload.is_anchor(target)
