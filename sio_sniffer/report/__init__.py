"""``sio-sniffer report FILE...``: the live analysis, run offline over captures and HAR files.

Captures (and HAR files, read as captures) are merged by time, their tap events go through the
same pipeline and analyzer as on the wire, with the analyzer's clock driven by the capture's own
timestamps, and the result is printed as text, as JSON (``--json``) or written as one
self-contained HTML file (``--html OUT``): a sequence view with one lane per client and the
server in the middle, lost events and other flags marked, filters by client, namespace and
event name. Unreadable lines are reported with file and line number; the report covers what was
readable and the exit status is then 1.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from sio_sniffer import __version__, model
from sio_sniffer.capture import (
    CaptureError,
    CaptureItem,
    CaptureProblem,
    CaptureReader,
    capture_id_of,
    merge,
)
from sio_sniffer.capture.har import HarReader, is_har
from sio_sniffer.model import Record, iso_ts
from sio_sniffer.pipeline.decode import Pipeline, PipelineConfig

# Kinds shown on the timeline; heartbeats and raw HTTP exchanges would drown the events.
TIMELINE_KINDS = frozenset({
    model.EIO_OPEN, model.EIO_UPGRADE, model.EIO_CLOSE, model.SIO_CONNECT, model.SIO_CONNECT_OK,
    model.SIO_CONNECT_ERROR, model.SIO_DISCONNECT, model.SIO_EVENT, model.SIO_ACK,
    model.HTTP_REQUEST, model.DECODE_ERROR, model.FLAG, model.BROADCAST, model.UPSTREAM_ERROR,
})
MAX_TIMELINE = 20_000
MAX_ARG_TEXT = 400


class Inputs:
    """Several capture/HAR files read as one stream of items, merged by time."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self.paths = [str(p) for p in paths]
        self.readers: list[CaptureReader | HarReader] = []
        ids = []
        for path in self.paths:
            if not os.path.exists(path):
                raise CaptureError(f"{path}: no such file")
            if is_har(path):
                self.readers.append(HarReader(path))
                ids.append(path)
            else:
                self.readers.append(CaptureReader(path))
                ids.append(capture_id_of(path))
        self._ids = ids

    def __iter__(self) -> Iterator[CaptureItem]:
        return merge(self.readers, self._ids)

    @property
    def problems(self) -> list[CaptureProblem]:
        return [p for r in self.readers for p in r.problems]

    @property
    def upstreams(self) -> list[str]:
        return sorted({r.header.upstream for r in self.readers
                       if isinstance(r, CaptureReader) and r.header is not None
                       and r.header.upstream})


def open_inputs(paths: Sequence[str | os.PathLike[str]]) -> Inputs:
    """The merged items of capture and HAR files (``problems`` fill in while iterating)."""
    return Inputs(paths)


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
    start: float | None = None
    end: float | None = None

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
            "timeline_dropped": self.timeline_dropped,
        }

    def text(self) -> str:
        out = [f"sio-sniffer report of {', '.join(self.files)}"]
        if self.upstreams:
            out.append(f"upstream: {', '.join(self.upstreams)}")
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
        if self.problems:
            out.append(f"\nunreadable input ({len(self.problems)}):")
            out.extend(f"  {p}" for p in self.problems)
        return "\n".join(out)


def build_report(inputs: Inputs, *, path: str = "/socket.io/", analysis: Any = None,
                 sink: Callable[[Record], None] | None = None) -> Report:
    """Run the inputs through the pipeline (and the analyzer when one is configured); ``sink``
    (e.g. the live page's) hears every record too."""
    report = Report(files=list(inputs.paths))

    def emit(rec: Record) -> None:
        report.add(rec)
        if sink is not None:
            sink(rec)

    analyzer: Any = None
    if analysis is not None:
        from sio_sniffer.analysis import Analyzer

        analyzer = Analyzer(analysis, emit)

    def on_record(rec: Record) -> None:
        emit(rec)
        if analyzer is not None:
            analyzer.feed(rec)

    pipeline = Pipeline(PipelineConfig(path=path), on_record)
    last_tick: float | None = None
    saw_tap = False
    stored: list[Record] = []
    for item in inputs:
        if isinstance(item, Record):
            stored.append(item)
            continue
        saw_tap = True
        if analyzer is not None and (last_tick is None or item.ts - last_tick >= 0.1):
            analyzer.tick(item.ts)
            last_tick = item.ts
        pipeline.feed(item)
    if not saw_tap:
        # A capture that kept only records is re-analysed from them.
        for rec in stored:
            if rec.event in (model.FLAG, model.BROADCAST, model.ROOMS, model.SUMMARY):
                continue
            on_record(rec)
    if analyzer is not None:
        # The capture's last moment is "now": what was still in time then is not judged lost.
        analyzer.finish(report.end if report.end is not None else 0.0)
    report.upstreams = inputs.upstreams
    report.problems = [str(p) for p in inputs.problems]
    return report


def render_html(report: Report) -> str:
    """One self-contained HTML page: summary, filters and the sequence view (no network)."""
    data = orjson.dumps({**report.to_dict(), "timeline": report.timeline},
                        default=repr).decode().replace("</", "<\\/")
    title = html.escape(f"sio-sniffer report: {', '.join(Path(f).name for f in report.files)}")
    return _HTML.replace("{{TITLE}}", title).replace("{{DATA}}", data)


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{TITLE}}</title>
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{padding:10px 16px;background:#1f2937;color:#fff}
header h1{font-size:16px;margin:0 0 4px}
#summary{font-size:12px;color:#d1d5db}
#filters{padding:8px 16px;background:#fff;border-bottom:1px solid #ddd;position:sticky;top:0;
 z-index:2;display:flex;gap:12px;align-items:center;flex-wrap:wrap}
#flags{padding:6px 16px;background:#fff1f2;color:#9f1239;font-size:12px}
#flags:empty{display:none}
#lanes,#rows .row{display:grid;grid-template-columns:110px var(--cols)}
#lanes{position:sticky;top:42px;background:#f3f4f6;border-bottom:1px solid #ccc;z-index:1;
 font-weight:600;font-size:12px}
#lanes div{padding:4px;text-align:center;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.row{position:relative;min-height:22px;border-bottom:1px solid #eee}
.row:hover{background:#eef2ff}
.t{font:11px monospace;color:#666;padding:3px 4px}
.arrow{position:absolute;top:4px;height:14px;border-top:2px solid #2563eb;font-size:11px;
 white-space:nowrap;overflow:visible}
.arrow.out{border-color:#059669}
.arrow .lbl{position:relative;top:-15px;padding:0 4px;background:rgba(255,255,255,.85)}
.arrow.r::after,.arrow.l::before{content:"";position:absolute;top:-6px;
 border:5px solid transparent}
.arrow.r::after{right:-2px;border-left-color:currentColor}
.arrow.l::before{left:-2px;border-right-color:currentColor}
.arrow.in{color:#2563eb}.arrow.out{color:#059669}
.arrow .lbl{color:#222}
.note{position:absolute;top:2px;font-size:11px;padding:1px 6px;border-radius:8px;background:#e5e7eb;
 white-space:nowrap}
.row.flag .note{background:#fecdd3;color:#9f1239;font-weight:600}
.row.lost{background:#fff1f2}
.lane-line{position:absolute;top:0;bottom:0;border-left:1px dashed #cbd5e1}
.lane-line.server{border-left:2px solid #64748b}
</style></head><body>
<header><h1>{{TITLE}}</h1><div id="summary"></div></header>
<div id="filters">
 <label>client <select id="f-client"><option value="">all</option></select></label>
 <label>namespace <select id="f-nsp"><option value="">all</option></select></label>
 <label>event <input id="f-name" placeholder="name contains"></label>
 <label><input type="checkbox" id="f-flags"> flags only</label>
 <span id="count"></span>
</div>
<div id="flags"></div>
<div id="lanes"></div>
<div id="rows"></div>
<script type="application/json" id="data">{{DATA}}</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const clients = D.clients.map(c => c.eio_sid);
const serverCol = Math.floor(clients.length / 2);
const cols = clients.slice(0, serverCol).concat(["server"], clients.slice(serverCol));
const colOf = n => cols.indexOf(n);
document.documentElement.style.setProperty("--cols", `repeat(${cols.length}, minmax(120px,1fr))`);
const t0 = D.timeline.length ? D.timeline[0].ts : 0;
document.getElementById("summary").textContent =
  `${D.clients.length} client(s), ${D.timeline.length} timeline item(s), ` +
  `${D.flags.length} flag(s), ${D.broadcasts} broadcast(s), from ${D.start} to ${D.end}` +
  (D.problems.length ? ` - ${D.problems.length} unreadable line(s)` : "");
const lanes = document.getElementById("lanes");
lanes.appendChild(Object.assign(document.createElement("div"), {textContent: "time (s)"}));
for (const c of cols) {
  const d = document.createElement("div");
  d.textContent = c === "server" ? "server" : "client " + c;
  d.title = c;
  lanes.appendChild(d);
}
document.getElementById("flags").textContent = D.flags.map(
  f => `${f.flag || "flag"} ${f.name || ""}: ${f.cause || ""}`).join("  |  ");
const sel = (id, values) => {
  const s = document.getElementById(id);
  for (const v of values) s.appendChild(Object.assign(document.createElement("option"),
    {value: v, textContent: v}));
};
sel("f-client", clients);
sel("f-nsp", [...new Set(D.timeline.map(r => r.nsp).filter(Boolean))].sort());
const rows = document.getElementById("rows");
function draw() {
  const fc = document.getElementById("f-client").value;
  const fn = document.getElementById("f-nsp").value;
  const fname = document.getElementById("f-name").value.toLowerCase();
  const fflag = document.getElementById("f-flags").checked;
  rows.textContent = "";
  let shown = 0;
  for (const r of D.timeline) {
    if (fc && r.client !== fc) continue;
    if (fn && r.nsp !== fn) continue;
    if (fname && !((r.name || r.event) + "").toLowerCase().includes(fname)) continue;
    if (fflag && r.event !== "flag") continue;
    shown++;
    const row = document.createElement("div");
    row.className = "row " + (r.event === "flag" ? "flag" : "") +
      (r.event === "flag" && /^lost/.test(r.name) ? " lost" : "");
    row.dataset.event = r.event;
    const t = Object.assign(document.createElement("div"),
      {className: "t", textContent: (r.ts - t0).toFixed(3)});
    row.appendChild(t);
    for (let i = 0; i < cols.length; i++) row.appendChild(document.createElement("div"));
    const width = 100 / cols.length;
    const x = i => `calc(110px + (100% - 110px) * ${(i + 0.5) / cols.length})`;
    for (let i = 0; i < cols.length; i++) {
      const l = document.createElement("div");
      l.className = "lane-line" + (cols[i] === "server" ? " server" : "");
      l.style.left = x(i);
      row.appendChild(l);
    }
    const label = `${r.event === "sio.event" ? "" : r.event + " "}${r.name || ""}` +
      `${r.nsp && r.nsp !== "/" ? " " + r.nsp : ""}${r.ack_id != null ? " #" + r.ack_id : ""}`;
    const ci = r.client ? colOf(r.client) : -1, si = colOf("server");
    if (ci >= 0 && (r.dir === "in" || r.dir === "out") && r.event !== "flag") {
      const a = document.createElement("div");
      // The head points at the receiver: the server for "in", the client for "out".
      const to = r.dir === "in" ? si : ci, from = r.dir === "in" ? ci : si;
      a.className = "arrow " + r.dir + (to > from ? " r" : " l");
      const lo = Math.min(ci, si), hi = Math.max(ci, si);
      a.style.left = x(lo);
      a.style.width = `calc((100% - 110px) * ${(hi - lo) / cols.length})`;
      a.appendChild(Object.assign(document.createElement("span"),
        {className: "lbl", textContent: label}));
      a.title = r.text || "";
      row.appendChild(a);
    } else {
      const n = document.createElement("div");
      n.className = "note";
      n.textContent = label + (r.event === "flag" && r.text ? ": " + r.text : "");
      n.title = r.text || "";
      n.style.left = x(ci >= 0 ? ci : si);
      row.appendChild(n);
    }
    rows.appendChild(row);
  }
  document.getElementById("count").textContent = `${shown} shown`;
}
for (const id of ["f-client", "f-nsp", "f-name", "f-flags"])
  document.getElementById(id).addEventListener("input", draw);
draw();
</script></body></html>
"""
