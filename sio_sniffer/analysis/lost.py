"""Why an ingested event never came out: the cause and hint of a ``lost`` flag.

The judgement goes from the plainest explanation to the vaguest: the ingest itself failed; the
server echoed the event to its sender only; the receivers were reconnecting; nobody was on the
namespace the server relays to (but someone was on another one); nobody was connected at all;
the server emitted something resembling it that differs (the differences are listed); the
receivers got nothing; they got other events only.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from sio_sniffer.analysis import payload
from sio_sniffer.analysis.cluster import ClusterView
from sio_sniffer.analysis.config import AnalysisConfig, Rule
from sio_sniffer.analysis.correlate import Expectation
from sio_sniffer.analysis.sessions import Session, SessionTable
from sio_sniffer.model import flags as F

# A client refused on another namespace usually gives up for good: the judgement looks this far
# back (seconds) for it.
NAMESPACE_LOOKBACK = 60.0
# How long (seconds) after the last session disowned by a second server on the port a lost
# event is put down to it: the twin keeps taking requests long after the last 400 it caused.
TWO_SERVERS_MEMORY = 300.0
# Connection state recovery appends the adapter's offset to each broadcast as its last argument.
# A cluster adapter's is its Redis stream entry id (@socket.io/redis-streams-adapter:
# milliseconds-sequence); the single-server adapter's is a short random id, no sign of anything.
# Only stream ids that grow, near the traffic's own clock, on this many broadcasts in a row count.
STREAM_OFFSET = re.compile(r"[0-9]{13}-[0-9]{1,6}")
OFFSETS_IN_A_ROW = 3
OFFSET_CLOCK_SLACK = 86400.0
UPSTREAM_DOWN_HINT = ("start the server (claude-mpm: `claude-mpm monitor start --port PORT`, "
                      "the port the sniffer's --upstream names), or point --upstream at the "
                      "port it runs on")
ECHO_HINT = ("the server emits to the sender's sid: broadcast to the namespace/room instead "
             "(python-socketio: emit without to=sid; JS: io.emit / socket.broadcast.emit)")


@dataclass(slots=True)
class Emission:
    """An outgoing event as first delivered: the candidates a lost event is compared with."""

    ts: float
    nsp: str | None
    name: str | None
    args: Any
    recipient: str | None
    pairs: frozenset[tuple[str, Any]] | None = None
    matched: bool = False  # it closed an expectation: it is that event, not a changed other one


class LostJudge:
    """Reads the sessions, the namespaces the server accepted and the recent emissions (all
    owned elsewhere) to explain a lost expectation."""

    def __init__(self, config: AnalysisConfig, rules: tuple[Rule, ...], sessions: SessionTable,
                 server_nsps: OrderedDict[str, None], recent: deque[Emission],
                 relayed_to: OrderedDict[tuple[str | None, str | None], str | None],
                 cluster: ClusterView | None = None) -> None:
        self.config = config
        self.profile = config.profile
        self.rules = rules
        self.sessions = sessions
        self.server_nsps = server_nsps
        self.recent = recent
        # (nsp, name) of a client event kind -> the namespace it last came out on.
        self.relayed_to = relayed_to
        self.cluster = cluster
        # Sticky-session cookie names seen in the traffic: the server is one node of several.
        self.sticky: OrderedDict[str, None] = OrderedDict()
        # When unknown_sid last found two servers on the port (set by the ingest part).
        self.two_servers_at = -math.inf
        # Whether any Socket.IO client ever connected through this sniffer (set by the
        # analyzer): hooks answered 2xx with none ever here may be relayed to another node.
        self.connected_ever = False
        # Broadcasts in a row whose last argument was a growing Redis stream offset, the last
        # one seen, and (once OFFSETS_IN_A_ROW is reached) an example: a cluster adapter.
        self.offsets_in_a_row = 0
        self.last_offset: tuple[int, int] | None = None
        self.stream_offset: str | None = None

    def note_sticky(self, names: Any) -> None:
        for name in names or ():
            self.sticky[str(name)] = None
            while len(self.sticky) > 8:
                self.sticky.popitem(last=False)

    def note_offset(self, record: Any) -> None:
        """An event delivered here: whether it ends with a cluster adapter's offset."""
        if self.stream_offset is not None:
            return
        args = record.args if isinstance(record.args, list) else [record.args]
        last = args[-1] if args else None
        if not (isinstance(last, str) and STREAM_OFFSET.fullmatch(last)):
            self.offsets_in_a_row = 0
            return
        ms, seq = (int(part) for part in last.split("-"))
        grew = self.last_offset is None or (ms, seq) > self.last_offset
        near = abs(ms / 1000 - record.ts) < OFFSET_CLOCK_SLACK
        self.offsets_in_a_row = self.offsets_in_a_row + 1 if grew and near else 0
        self.last_offset = (ms, seq)
        if self.offsets_in_a_row >= OFFSETS_IN_A_ROW:
            self.stream_offset = last

    def expected_nsp(self, exp: Expectation) -> str:
        """The namespace ``exp`` should have come out on."""
        rule = self.rules[exp.rule] if exp.rule is not None else None
        if rule is not None and rule.out_nsp and not any(c in rule.out_nsp for c in "*?["):
            return rule.out_nsp
        if self.profile is not None and self.profile.nsp:
            return self.profile.nsp
        if exp.source == "event":
            # Where this kind came out before is where it is expected next.
            seen = self.relayed_to.get((exp.nsp, exp.name))
            if seen is not None:
                return seen
            if exp.nsp:
                return exp.nsp
        if len(self.server_nsps) == 1:
            return next(iter(self.server_nsps))
        return "/"

    def cause(self, exp: Expectation, nsp: str, ts: float, others: list[Session],
              receivers: list[Session], fields: dict[str, Any]) -> tuple[str, str, str]:
        """``(code, cause, hint)`` for ``exp`` judged lost at ``ts``; adds the evidence to
        ``fields``. ``others`` are the open sessions but the sender, ``receivers`` those of them
        connected on ``nsp``."""
        if exp.source == "http" and (exp.status is None or exp.status >= 400):
            down = exp.extra.get("upstream_down")
            if down is not None:
                return (F.LOST_UPSTREAM_DOWN,
                        f"the server was not running: the sniffer could not reach it ({down}) "
                        "and answered the hook 502 itself", UPSTREAM_DOWN_HINT)
            if exp.status is None:
                return (F.LOST_INGEST_ERROR, "the server had not answered the POST",
                        "the server's ingest handler hangs: answer the POST first, then relay")
            return (F.LOST_INGEST_ERROR, f"the server answered the ingest with {exp.status}",
                    ingest_hint(exp.status, exp.path))
        if exp.echoed:
            fields["receivers"] = [s.eio_sid for s in receivers]
            return (F.LOST_ECHO_ONLY,
                    f"it was delivered only back to its sender, not to the "
                    f"{len(receivers)} other client(s) on {nsp}", ECHO_HINT)
        if exp.ts - self.two_servers_at < TWO_SERVERS_MEMORY:
            # With two servers on the port each request lands on either: the event may have
            # gone to the one no dashboard is connected to, whatever the other one emitted.
            return (F.LOST_TWO_SERVERS,
                    "two servers answer on this port (see unknown_sid): the hook's POST and the "
                    "dashboards' sessions land on either one, sessions opened on one are "
                    "disowned by the other, and the event may have gone to the server no "
                    "dashboard is connected to",
                    "stop the second server on the port (`lsof -i :PORT`): with one server the "
                    "dashboards stay connected and receive the events")
        reconnecting = self._reconnecting(exp, nsp, others, receivers, fields)
        if reconnecting is not None:
            return reconnecting
        if not receivers:
            if self.cluster is not None:
                return self.cluster.cause(exp, nsp, ts, fields)
            code, cause, hint = self._nobody_on(exp, nsp, others, fields)
            if code == F.LOST_NO_RECEIVERS and (self.sticky or self.stream_offset):
                return self._other_node(exp, cause)
            if code == F.LOST_NO_RECEIVERS and self._maybe_elsewhere(exp):
                # Also what one server with no dashboard open looks like: said as a possibility.
                fields["maybe_other_node"] = True
                return (code, f"{cause}; no Socket.IO client has connected through this sniffer "
                        f"at all, while the server answered the POST with {exp.status}",
                        f"{hint.rstrip('.')}; or, if this server is one node of a cluster, the "
                        f"receivers may be on another node: put a sniffer in front of every "
                        f"node with --cluster redis://HOST:PORT (the Redis the app's adapter "
                        f"uses)")
            return code, cause, hint
        fields["receivers"] = [s.eio_sid for s in receivers[:16]]
        candidates = [e for e in self.recent if exp.ts <= e.ts <= ts]
        changed = self._changed(exp, nsp, candidates, fields)
        if changed is not None:
            return changed
        on_nsp = [e for e in candidates if e.nsp == nsp]
        labels = ", ".join(s.label() for s in receivers[:4])
        not_emitted = self._not_emitted(exp, nsp, receivers, on_nsp, fields)
        if not_emitted is not None:
            return not_emitted
        if not on_nsp and self.cluster is not None:
            # Nobody here got anything: whether the node emitted it is the adapter's to say.
            return self.cluster.cause(exp, nsp, ts, fields)
        if not on_nsp:
            return (F.LOST_NOT_DELIVERED,
                    f"{len(receivers)} client(s) connected on {nsp} ({labels}) received nothing "
                    f"from the server in that time",
                    "the server emitted to nobody connected: check the emit's room/to= (the "
                    "clients never joined that room) and that the relay handler ran")
        names = sorted({str(e.name) for e in on_nsp})[:6]
        fields["evidence"] = {"receivers": len(receivers), "emitted_on_nsp": len(on_nsp),
                              "names": names, "ingest_status": exp.status,
                              "ingest_ms": exp.duration_ms}
        return (F.LOST_UNKNOWN,
                f"{len(receivers)} client(s) on {nsp} got {len(on_nsp)} other event(s) "
                f"({', '.join(names)}), none resembling the ingested payload",
                "follow the event through the server's relay code: nothing it emitted carried "
                "this payload")

    def _reconnecting(self, exp: Expectation, nsp: str, others: list[Session],
                      receivers: list[Session],
                      fields: dict[str, Any]) -> tuple[str, str, str] | None:
        window_start = exp.ts - self.config.deadline
        flapped = [s for s in self.sessions.closed.values()
                   if s.closed is not None and s.closed >= window_start
                   and s.eio_sid != exp.eio_sid and nsp in s.nsps]
        pending = [s for s in others if (s.nsps.get(nsp) is not None
                                         and s.nsps[nsp].state == "pending")]
        late = [s for s in receivers if s.nsps[nsp].since > exp.ts]
        if not ((not receivers or len(late) == len(receivers)) and (flapped or pending or late)):
            return None
        if not flapped:
            # Nobody on the namespace dropped: whoever connects now connects for the first time
            # (a dashboard opened after the event, a new tab), which is no reconnect.
            first = late or pending
            fields["receivers"] = [s.label() for s in first]
            when = "; ".join(
                f"{s.label()} connected {s.nsps[nsp].since - exp.ts:.1f} s later" if s in late
                else f"{s.label()} was still connecting" for s in first[:4])
            return (F.LOST_NO_RECEIVERS,
                    f"nobody was connected on {nsp} yet when it came in ({when}, its first "
                    f"connection, not a reconnect)",
                    "open the dashboard before the events are sent: the server does not keep "
                    "events for clients that connect later")
        names = [s.label() for s in (late or pending or flapped)]
        fields["receivers"] = names
        state = ("reconnected after it" if late else
                 "was mid-connect" if pending else "had disconnected")
        return (F.LOST_RECONNECTING,
                f"the receiver {', '.join(names)} {state} on {nsp}",
                "the receiver was reconnecting when the server relayed: find why it "
                "dropped (ping timeouts, proxies with short read timeouts) or replay "
                "missed events on reconnect (connection state recovery)")

    def _nobody_on(self, exp: Expectation, nsp: str, others: list[Session],
                   fields: dict[str, Any]) -> tuple[str, str, str]:
        namespace_start = exp.ts - NAMESPACE_LOOKBACK
        elsewhere = [(s, n, st) for s in others for n, st in s.nsps.items() if n != nsp]
        recent_refused = [(s, n, st) for s in self.sessions.closed.values()
                          if s.closed is not None and s.closed >= namespace_start
                          for n, st in s.nsps.items() if n != nsp]
        tried = elsewhere or recent_refused
        if tried:
            parts = []
            for session, other, nsp_state in tried[:4]:
                desc = f"{session.label()} on {other}"
                if nsp_state.state == "refused":
                    desc += f" (refused: {nsp_state.message!r})"
                parts.append(desc)
            fields["clients_elsewhere"] = [f"{s.eio_sid} {n}" for s, n, _ in tried[:8]]
            other_nsp = tried[0][1]
            return (F.LOST_NAMESPACE,
                    f"no client was connected on {nsp}, where the server relays; clients "
                    f"were only on another namespace: {'; '.join(parts)}",
                    f"connect the dashboard to {nsp} (the namespace the server emits on), "
                    f"or make the server emit on {other_nsp}")
        handshaking = [s for s in others if not s.nsps]
        extra = (f" ({len(handshaking)} Engine.IO session(s) open without any namespace)"
                 if handshaking else "")
        return (F.LOST_NO_RECEIVERS, f"no client was connected{extra}",
                "no dashboard was listening: open it (pointed at this proxy's port) before "
                "the events are sent; the server does not keep events for later")

    def _maybe_elsewhere(self, exp: Expectation) -> bool:
        """A hook the server took (2xx) while no client ever connected here: it relayed to
        nobody here, which a cluster does when its receivers are on the other nodes."""
        return (exp.source == "http" and exp.status is not None and 200 <= exp.status < 300
                and not self.connected_ever)

    def _other_node(self, exp: Expectation, nobody: str) -> tuple[str, str, str]:
        """Nobody here to receive it, behind a load balancer that pins clients to nodes."""
        signs = []
        if self.sticky:
            signs.append(f"the traffic carries the sticky-session cookie {', '.join(self.sticky)}")
        if self.stream_offset:
            signs.append(f"its broadcasts carried a cluster adapter's Redis stream offset "
                         f"({self.stream_offset}, connection state recovery on "
                         f"@socket.io/redis-streams-adapter)")
        answered = (f"; the server answered the POST with {exp.status}"
                    if exp.source == "http" and exp.status is not None else "")
        return (F.LOST_OTHER_NODE,
                f"{nobody} here, but this server is one node of a cluster ({'; '.join(signs)})"
                f"{answered}: its receivers may be connected to another node",
                "put a sniffer in front of every node with --cluster redis://HOST:PORT (the "
                "Redis the app's adapter uses): they then judge the cluster as one and say "
                "which node dropped an event")

    def never_relayed(self, exp: Expectation, ts: float, others: list[Session],
                      fields: dict[str, Any]) -> tuple[str, str, str, str] | None:
        """``(kind, code, cause, hint)`` for a client event of a kind the server has never
        relayed, judged at ``ts``; None when the server was busy sending other things to
        other clients meanwhile (it answers requests, it does not relay them)."""
        nsp = self.expected_nsp(exp)
        candidates = [e for e in self.recent
                      if exp.ts <= e.ts <= ts and e.recipient != exp.eio_sid]
        changed = self._changed(exp, nsp, candidates, fields, strong=True)
        if changed is not None:
            return (F.LOST, *changed)
        if any(s.last_out is not None and s.last_out >= exp.ts for s in others):
            return None
        waited = ts - exp.ts
        hint = ("likeliest first: the server emits on a namespace nobody is on (`sio-sniffer "
                "diagnose URL --nsp /,...` shows which namespaces it accepts and whether a test "
                "event comes out); it emits to a room nobody joined (check the emit's room=/to= "
                "against what the receivers join); the handler does not relay, or raises (the "
                "server's log shows it); nobody who should receive it is connected. A [[rule]] "
                "in --rules saying where this event comes out makes each one judged as lost")
        if not others:
            return (F.NEVER_RELAYED, F.NEVER_RELAYED_NOBODY_ELSE,
                    f"no other client was connected, and the server sent nothing in the "
                    f"{waited:g} s after it; no {exp.name!r} from {exp.nsp} has come out of the "
                    f"server so far", hint)
        parts = [f"{s.eio_sid} on {', '.join(connected) or 'no namespace'} ({s.role()})"
                 for s in others[:6]
                 for connected in [[n for n, st in s.nsps.items() if st.state == "connected"]]]
        fields["clients"] = [f"{s.eio_sid} {n}" for s in others[:16]
                             for n, st in s.nsps.items() if st.state == "connected"]
        return (F.NEVER_RELAYED, F.NEVER_RELAYED_NOBODY_RECEIVED,
                f"{len(others)} other client(s) were connected ({'; '.join(parts)}) and the "
                f"server sent them nothing in the {waited:g} s after it; no {exp.name!r} from "
                f"{exp.nsp} has come out of the server so far", hint)

    def echo_elsewhere(self, exp: Expectation,
                       others: list[Session]) -> tuple[str, str, str] | None:
        """An event echoed to its sender under its own name while listeners (clients that
        never sent an event) waited elsewhere: ``(code, cause, hint)``; None for an answer
        (another name: a request and its reply) or when nobody else listened."""
        if exp.echo_name != exp.name:
            return None
        # Only who was connected when it came in waited for it: a client connecting later (a
        # new one, or a reconnect's new session) could not have received it anyway.
        listeners = [(s, n) for s in others if s.role() == "dashboard"
                     for n, st in s.nsps.items() if st.state == "connected" and st.since <= exp.ts]
        if not listeners:
            return None
        parts = "; ".join(f"{s.eio_sid} on {n}" for s, n in listeners[:6])
        return (F.LOST_ECHO_ONLY,
                f"it was delivered only back to its sender on {exp.nsp}, while "
                f"{len(listeners)} listening client(s) waited: {parts}", ECHO_HINT)

    def _not_emitted(self, exp: Expectation, nsp: str, receivers: list[Session],
                     on_nsp: list[Emission],
                     fields: dict[str, Any]) -> tuple[str, str, str] | None:
        """The receivers are on ``nsp`` and events like this one reach them (the kind came
        out there before, or others of the window closed their own expectations): this one was
        not emitted. None without that evidence."""
        expected_name = self._expected_name(exp)
        relayed_before = exp.source == "event" and (exp.nsp, exp.name) in self.relayed_to
        siblings = [e for e in on_nsp
                    if e.matched and (expected_name is None or e.name == expected_name)]
        if not (relayed_before or siblings):
            return None
        labels = ", ".join(s.label() for s in receivers[:4])
        ids = [d for e in siblings[:1] for d in payload.identity_conflicts(exp.payload, e.args)]
        fields["not_emitted"] = {"receivers": len(receivers), "siblings_emitted": len(siblings),
                                 "differs": ids}
        kind = (f"{exp.name!r} from {exp.nsp}" if exp.source == "event"
                else f"what is POSTed to {exp.path}")
        seen = "came out on" if relayed_before else "was coming out on"
        meanwhile = ""
        if siblings:
            meanwhile = (f"; it emitted {len(siblings)} other one(s) meanwhile"
                         + (f" (this one: {', '.join(ids)})" if ids else ""))
        return (F.LOST_NOT_EMITTED,
                f"the server did not emit it: {kind} {seen} {nsp}, where {len(receivers)} "
                f"client(s) were connected ({labels}){meanwhile}",
                "the server's relay skipped this event: look in its log for an error in the "
                "handler at that time, and for a condition in the handler (a filter, a dedupe, a "
                "rate limit, a missing await) that drops it")

    def _changed(self, exp: Expectation, nsp: str, candidates: list[Emission],
                 fields: dict[str, Any], strong: bool = False) -> tuple[str, str, str] | None:
        """The emission most like ``exp``'s payload, if any shares a field or the name and is
        not another event (one that closed another expectation, or whose ids differ).
        ``strong`` asks for the same name or half of the fields in common."""
        expected_name = self._expected_name(exp)
        best: tuple[tuple[float, int, float], Emission, tuple[int, int]] | None = None
        wanted = payload.pairs(exp.payload)
        for emission in candidates:
            if emission.matched:
                continue
            if emission.pairs is None:
                emission.pairs = payload.pairs(emission.args)
            same, total = payload.similarity(wanted, emission.pairs)
            name_bonus = 1 if expected_name and emission.name == expected_name else 0
            score = (same / total if total else 0.0, name_bonus, -(emission.ts - exp.ts))
            if strong and not ((name_bonus and same) or (total and same * 2 >= total)):
                continue
            if (same or name_bonus) and (best is None or score > best[0]) \
                    and not payload.identity_conflicts(exp.payload, emission.args, limit=1):
                best = (score, emission, (same, total))
        if best is None:
            return None
        _, emission, (same, total) = best
        diffs = payload.differences(exp.payload, emission.args)
        if expected_name and emission.name != expected_name:
            diffs.insert(0, f"named {emission.name!r}, expected {expected_name!r}")
        if emission.nsp != nsp:
            diffs.insert(0, f"on {emission.nsp}, expected {nsp}")
        fields["nearest"] = {"name": emission.name, "nsp": emission.nsp,
                             "after_ms": round((emission.ts - exp.ts) * 1000, 1),
                             "fields_matching": f"{same}/{total}", "differences": diffs}
        return (F.LOST_EMITTED_OTHER,
                f"the server emitted {emission.name!r} on {emission.nsp} "
                f"{(emission.ts - exp.ts) * 1000:.0f} ms later, which differs: "
                f"{'; '.join(diffs) or 'different payload'}",
                "the relay changed the event: keep the ingested payload intact inside the "
                "emitted one (same dict, same field values)")

    def _expected_name(self, exp: Expectation) -> str | None:
        rule = self.rules[exp.rule] if exp.rule is not None else None
        if rule is not None and rule.out_name and not any(c in rule.out_name for c in "*?["):
            return rule.out_name
        return exp.name if exp.source == "event" else None


def ingest_hint(status: int, path: Any) -> str:
    """What to do about the server answering an ingest POST with ``status``."""
    if status == 404:
        return (f"the server does not serve {path}: the hooks post to the wrong path, port or "
                "server version")
    if status == 413:
        return "the body is too large for the server: raise its limit or send smaller events"
    if status in (400, 422):
        return "the server rejected the body: check the JSON the hook sends"
    if status >= 500:
        return ("the server's ingest handler failed (bad JSON, a missing field, or a body above "
                "1 MiB in aiohttp): its log has the traceback")
    return "the server refused the ingest: check its log"
