"""Building the report: the inputs' records, through the record chain, into a :class:`Report`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from sio_sniffer import __version__, model
from sio_sniffer.model import Record, iso_ts
from sio_sniffer.model.cluster import CLUSTER_FACTS
from sio_sniffer.pipeline.chain import Chain
from sio_sniffer.pipeline.decode import Pipeline, PipelineConfig
from sio_sniffer.report.clocks import Clock
from sio_sniffer.report.inputs import Inputs

if TYPE_CHECKING:
    from sio_sniffer.analysis import AnalysisConfig

# Kinds shown on the timeline; heartbeats and raw HTTP exchanges would drown the events.
TIMELINE_KINDS = frozenset({
    model.EIO_OPEN, model.EIO_UPGRADE, model.EIO_CLOSE, model.SIO_CONNECT, model.SIO_CONNECT_OK,
    model.SIO_CONNECT_ERROR, model.SIO_DISCONNECT, model.SIO_EVENT, model.SIO_ACK,
    model.HTTP_REQUEST, model.DECODE_ERROR, model.FLAG, model.BROADCAST, model.UPSTREAM_ERROR,
})
MAX_TIMELINE = 20_000
MAX_ARG_TEXT = 400


@dataclass
class _Client:
    eio_sid: str
    transport: str = ""
    upgraded: bool = False
    namespaces: list[str] = field(default_factory=list)
    user_agent: str | None = None
    peer: str | None = None
    first: float = 0.0
    last: float = 0.0
    events_in: int = 0
    events_out: int = 0
    close_reason: str | None = None


def _short(value: Any) -> str:
    text = orjson.dumps(value, default=lambda o: f"<{len(o)} bytes>" if isinstance(o, bytes)
                        else repr(o)).decode()
    return text if len(text) <= MAX_ARG_TEXT else text[:MAX_ARG_TEXT] + "..."


@dataclass
class Report:
    """Everything the report prints, built by feeding records in time order."""

    files: list[str]
    upstreams: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    clients: dict[str, _Client] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    events: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    flags: list[dict[str, Any]] = field(default_factory=list)
    broadcasts: list[dict[str, Any]] = field(default_factory=list)
    rooms: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    timeline_dropped: int = 0
    # Ingested events whose deadline had not come when the capture ended (Analyzer.unjudged).
    not_judged: list[dict[str, Any]] = field(default_factory=list)
    start: float | None = None
    end: float | None = None
    # The clock offsets the captures were merged with (several captures: report/clocks.py).
    clocks: list[Clock] = field(default_factory=list)

    def add(self, rec: Record) -> None:
        self.counts[rec.event] += 1
        self.start = rec.ts if self.start is None else min(self.start, rec.ts)
        self.end = rec.ts if self.end is None else max(self.end, rec.ts)
        if rec.event == model.FLAG:
            self.flags.append(rec.to_dict())
        elif rec.event == model.BROADCAST:
            self.broadcasts.append(rec.to_dict())
        elif rec.event == model.ROOMS and isinstance(rec.get("rooms"), list):
            self.rooms = list(rec.get("rooms"))
        elif rec.event == model.SUMMARY:
            self.summary = dict(rec.extra)
        sid = rec.eio_sid
        if sid is not None:
            c = self.clients.get(sid)
            if c is None:
                c = self.clients[sid] = _Client(sid, first=rec.ts)
            c.last = max(c.last, rec.ts)
            if rec.event == model.EIO_OPEN:
                c.transport = rec.transport or ""
                c.user_agent = rec.get("user_agent")
                c.peer = rec.get("peer")
            elif rec.event == model.EIO_UPGRADE:
                c.upgraded = True
            elif rec.event == model.EIO_CLOSE:
                c.close_reason = rec.get("reason")
            elif rec.event == model.SIO_CONNECT and rec.nsp and rec.nsp not in c.namespaces:
                c.namespaces.append(rec.nsp)
            elif rec.event == model.SIO_EVENT:
                if rec.dir == "in":
                    c.events_in += 1
                else:
                    c.events_out += 1
        if rec.event == model.SIO_EVENT:
            self.events[(rec.nsp or "/", rec.name or "", rec.dir or "")] += 1
        if rec.event in TIMELINE_KINDS:
            if len(self.timeline) >= MAX_TIMELINE:
                self.timeline_dropped += 1
                return
            row = {"ts": rec.ts, "event": rec.event, "client": sid, "dir": rec.dir,
                   "nsp": rec.nsp, "name": rec.name, "ack_id": rec.ack_id}
            if rec.event == model.FLAG:
                row["name"] = f"{rec.get('flag', 'flag')} {rec.name or ''}".strip()
                row["text"] = str(rec.get("cause") or _short(dict(rec.extra)))
            elif rec.event == model.HTTP_REQUEST:
                row["name"] = f"{rec.get('method')} {rec.get('path')}"
                row["text"] = _short(rec.args)
            elif rec.args is not None:
                row["text"] = _short(rec.args)
            else:
                row["text"] = _short(dict(rec.extra)) if rec.extra else ""
            self.timeline.append(row)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sniffer": __version__,
            "files": self.files,
            "upstreams": self.upstreams,
            "problems": self.problems,
            "start": iso_ts(self.start) if self.start is not None else None,
            "end": iso_ts(self.end) if self.end is not None else None,
            "counts": dict(sorted(self.counts.items())),
            "clients": [vars(c) | {"first": iso_ts(c.first), "last": iso_ts(c.last)}
                        for c in self.clients.values()],
            "events": [{"nsp": n, "name": e, "dir": d, "count": k}
                       for (n, e, d), k in sorted(self.events.items())],
            "flags": self.flags,
            "broadcasts": len(self.broadcasts),
            "rooms": self.rooms,
            "summary": self.summary,
            "not_judged": [e | {"ts": iso_ts(e["ts"])} for e in self.not_judged],
            "timeline_dropped": self.timeline_dropped,
            **({"clock_offsets": [{"file": c.file, "offset_s": round(c.offset, 6),
                                   "pairs": c.pairs, "how": c.how} for c in self.clocks]}
               if self.clocks else {}),
        }

    def text(self) -> str:
        out = [f"sio-sniffer report of {', '.join(self.files)}"]
        if self.upstreams:
            out.append(f"upstream: {', '.join(self.upstreams)}")
        if self.clocks:
            out.append("clock offsets: " + "; ".join(c.describe() for c in self.clocks))
        if self.start is not None and self.end is not None:
            out.append(f"from {iso_ts(self.start)} to {iso_ts(self.end)} "
                       f"({self.end - self.start:.3f} s)")
        out.append(f"\nclients: {len(self.clients)}")
        for c in self.clients.values():
            transport = c.transport + (" -> websocket" if c.upgraded else "")
            out.append(f"  {c.eio_sid}  {transport:<22} nsp={','.join(c.namespaces) or '-'}  "
                       f"in={c.events_in} out={c.events_out}"
                       + (f"  closed: {c.close_reason}" if c.close_reason else ""))
        if self.events:
            out.append("\nevents (namespace name direction: count):")
            out.extend(f"  {n} {e} {d}: {k}" for (n, e, d), k in sorted(self.events.items()))
        out.append(f"\nbroadcasts: {len(self.broadcasts)}")
        if self.rooms:
            out.append(f"inferred rooms: {len(self.rooms)}")
            out.extend(f"  {_short(r)}" for r in self.rooms)
        out.append(f"flags: {len(self.flags)}")
        for f in self.flags:
            out.append(f"  {f.get('ts')} {f.get('flag', 'flag')} {f.get('name') or ''}: "
                       f"{f.get('cause', '')}")
            if f.get("hint"):
                out.append(f"      hint: {f['hint']}")
        if self.not_judged:
            out.append(f"not judged, the capture ends before their deadline: "
                       f"{len(self.not_judged)}")
            out.extend(f"  {iso_ts(e['ts'])} {e['what']} from {e['from']}: waited "
                       f"{e['waited_s']:g} s of {e['deadline_s']:g} s" for e in self.not_judged)
        if self.problems:
            out.append(f"\nunreadable input ({len(self.problems)}):")
            out.extend(f"  {p}" for p in self.problems)
        return "\n".join(out)


def build_report(inputs: Inputs, *, path: str = "/socket.io/",
                 analysis: AnalysisConfig | None = None,
                 sink: Callable[[Record], None] | None = None) -> Report:
    """Run the inputs through the pipeline and the record chain (with the analysis when one is
    configured); ``sink`` (e.g. the live page's) hears every record too. A sink or the analysis
    that raises is reported on stderr and switched off, and the report goes on without it."""
    report = Report(files=list(inputs.paths))
    chain = Chain(analysis, [report.add] if sink is None else [report.add, sink])
    pipeline = Pipeline(PipelineConfig(path=path), chain.record)
    last_tick: float | None = None
    saw_tap = False
    stored: list[Record] = []
    end: float | None = None
    for item in inputs:
        # The capture's own end is its last line: the live sniffer's summary when it wrote one,
        # for it kept running (and judging deadlines) after the last traffic, up to then.
        end = item.ts if end is None else max(end, item.ts)
        if isinstance(item, Record):
            stored.append(item)
            if item.event in CLUSTER_FACTS and saw_tap:
                # What the cluster view knew then (a --cluster capture): to the analysis, in
                # time order with the traffic, as live.
                chain.fact(item)
            continue
        if not saw_tap:
            saw_tap = True
            for rec in stored:  # what the cluster view knew before the first traffic
                if rec.event in CLUSTER_FACTS:
                    chain.fact(rec)
        if last_tick is None or item.ts - last_tick >= 0.1:
            chain.tick(item.ts)
            last_tick = item.ts
        pipeline.feed(item)
    if not saw_tap:
        # A capture that kept only records is re-analysed from them.
        for rec in stored:
            if rec.event in (model.FLAG, model.BROADCAST, model.ROOMS, model.SUMMARY):
                continue
            if rec.event in CLUSTER_FACTS:
                chain.fact(rec)
                continue
            chain.record(rec)
    # The analysis clock goes to the capture's end, so what fell due before it is judged as live;
    # what was still in time then is listed as not judged rather than called lost.
    chain.finish(end if end is not None else 0.0)
    report.not_judged = chain.unjudged()
    report.upstreams = inputs.upstreams
    report.clocks = inputs.clocks
    report.problems = [str(p) for p in inputs.problems]
    return report
