// The live page of sio-sniffer: a WebSocket of records in, four panels out.
// The event list is virtualised (only the rows in view exist in the DOM) and the buffer is
// bounded (the server says how many records a page keeps), so a long session stays responsive.
"use strict";

(() => {
  const ROW_H = 22;
  const OVERSCAN = 6;
  const PREVIEW = 240;
  const $ = (id) => document.getElementById(id);
  const token = new URLSearchParams(location.search).get("token");

  const KIND_GROUP = {
    "sio.event": "events", "sio.ack": "events", "http.request": "events", "broadcast": "broadcasts",
    "flag": "flags", "http": "http", "upstream_error": "http",
  };

  let cap = 100000;
  let mode = "live";
  let buf = [];          // records, oldest first, at most ~cap
  let view = [];         // indices into buf that pass the filters
  let held = [];         // records that arrived while paused
  let paused = false;
  let lastSeq = 0;
  let selected = null;   // seq of the selected record
  let follow = true;
  let dirty = false;
  let dropped = 0;
  let clients = new Map();
  const seenClients = new Set();
  const seenNsps = new Set();
  const filter = { client: "", nsp: "", name: "", dir: "", kind: "", text: "" };
  const options = { clients: false, nsps: false };  // filter choices that need redrawing

  // -- records --------------------------------------------------------------------------------

  function label(ev) {
    switch (ev.kind) {
      case "sio.event": return ev.name || "";
      case "sio.ack": return "ack";
      case "broadcast": return "\u21c9 " + (ev.name || "");
      case "flag": return (ev.extra && ev.extra.flag) || "flag";
      case "http.request": return `${ev.extra.method || ""} ${ev.extra.path || ""}`;
      case "http": return `${ev.extra.method || ""} ${ev.extra.path || ""} ${ev.extra.status || ""}`;
      default: return ev.kind;
    }
  }

  function preview(ev) {
    if (ev._p !== undefined) return ev._p;
    const x = ev.extra || {};
    let text;
    if (ev.kind === "flag") text = x.cause || "";
    else if (ev.kind === "sio.ack") {
      text = (ev.pair ? `answers #${ev.pair} in ${ev.ms} ms  ` : "unpaired  ") + json(ev.args);
    } else if (ev.kind === "broadcast") {
      text = `one emit to ${x.count} client(s)${x.everyone ? ", everyone on " + ev.nsp : ""}` +
        (x.missed && x.missed.length ? `, missed by ${x.missed.join(", ")}` : "") +
        ` within ${x.spread_ms} ms  ` + json(ev.args);
    } else if (ev.args !== undefined) text = json(ev.args);
    else if (ev.kind === "conn.open") text = `from ${x.peer || "?"}`;
    else if (ev.kind === "conn.close") text = `closed by ${x.by || "?"}${x.error ? ": " + x.error : ""}`;
    else if (ev.kind === "eio.open") text = `${ev.transport || ""} ${x.user_agent || ""}`;
    else if (ev.kind === "eio.close") text = x.reason || "";
    else if (ev.kind === "http") text = `${x.status} in ${x.duration_ms} ms${x.body ? ": " + x.body : ""}`;
    else if (ev.kind === "decode_error") text = x.reason || "";
    else if (ev.kind === "sio.connect_error") text = x.message || "";
    else if (ev.kind === "upstream_error") text = `${x.url || ""}: ${x.reason || ""}`;
    else text = Object.keys(x).length ? json(x) : "";
    ev._p = text.length > PREVIEW ? text.slice(0, PREVIEW) + "..." : text;
    return ev._p;
  }

  function json(value) {
    if (value === undefined) return "";
    return JSON.stringify(value, (k, v) => (isBytes(v) ? `<${v.$bytes} bytes>` : v));
  }

  const isBytes = (v) => v !== null && typeof v === "object" && typeof v.$bytes === "number"
    && typeof v.hex === "string";

  function searchable(ev) {
    if (ev._s === undefined) {
      const x = ev.extra || {};
      ev._s = `${label(ev)} ${ev.args !== undefined ? json(ev.args) : ""} ${x.cause || ""} ` +
        `${x.hint || ""} ${x.reason || ""} ${x.message || ""}`.toLowerCase();
    }
    return ev._s;
  }

  function matches(ev) {
    const f = filter;
    if (f.client && ev.client !== f.client) return false;
    if (f.nsp && ev.nsp !== f.nsp) return false;
    if (f.dir && ev.dir !== f.dir) return false;
    if (f.kind) {
      const group = KIND_GROUP[ev.kind] || "lifecycle";
      if (group !== f.kind) return false;
    }
    if (f.name && !label(ev).toLowerCase().includes(f.name)) return false;
    if (f.text && !searchable(ev).includes(f.text)) return false;
    return true;
  }

  function indexOfSeq(seq) {
    let lo = 0, hi = buf.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const s = buf[mid].i;
      if (s === seq) return mid;
      if (s < seq) lo = mid + 1; else hi = mid - 1;
    }
    return -1;
  }

  function take(items) {
    for (const ev of items) {
      if (ev.i <= lastSeq) continue;
      lastSeq = ev.i;
      if (ev.client && !seenClients.has(ev.client)) { seenClients.add(ev.client); options.clients = true; }
      if (ev.nsp && !seenNsps.has(ev.nsp)) { seenNsps.add(ev.nsp); options.nsps = true; }
      if (paused) { held.push(ev); continue; }
      append(ev);
    }
    if (held.length > cap) held = held.slice(held.length - cap);
    trim();
    dirty = true;
  }

  function append(ev) {
    if (ev.kind === "sio.ack" && ev.pair) {
      const at = indexOfSeq(ev.pair);
      if (at >= 0) { buf[at].ackSeq = ev.i; buf[at].ackMs = ev.ms; }
    }
    buf.push(ev);
    if (matches(ev)) view.push(buf.length - 1);
  }

  function trim() {
    // Drop the oldest in chunks so the cost is spread: one shift of the arrays per 10 %.
    if (buf.length <= cap * 1.1) return;
    const cut = buf.length - cap;
    buf = buf.slice(cut);
    const kept = [];
    for (const v of view) if (v >= cut) kept.push(v - cut);
    view = kept;
  }

  function refilter() {
    view = [];
    for (let k = 0; k < buf.length; k++) if (matches(buf[k])) view.push(k);
    follow = true;
    dirty = true;
  }

  // -- the virtual list -----------------------------------------------------------------------

  const rowsEl = $("rows"), spacer = $("spacer"), items = $("items");
  const pool = [];

  function makeRow() {
    const row = document.createElement("div");
    row.className = "row";
    for (const c of ["c-t", "c-d", "c-c", "c-n", "c-e", "c-s", "c-i"]) {
      const span = document.createElement("span");
      span.className = c;
      row.appendChild(span);
    }
    row.addEventListener("click", () => select(Number(row.dataset.i)));
    items.appendChild(row);
    return row;
  }

  function clientLabel(id) {
    if (!id) return "";
    const c = clients.get(id);
    if (!c) return id;
    if (c.kind === "http") return `hook ${c.peer || ""}`;
    return `${id.slice(0, 10)} ${c.role}`;
  }

  function timeText(ts) {
    const d = new Date(ts * 1000);
    const p = (n, w = 2) => String(n).padStart(w, "0");
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  }

  function fill(row, ev) {
    row.dataset.i = ev.i;
    // Each flag says how bad it is (model/flags.py SEVERITY); captures from before that say
    // nothing and show as warnings.
    const sev = ev.kind === "flag" ? " sev-" + (ev.extra.severity || "warning") : "";
    const group = KIND_GROUP[ev.kind] || "lifecycle";
    row.className = `row k-${ev.kind === "flag" ? "flag" : group === "lifecycle" ? "life" : group}` +
      sev + (ev.i === selected ? " sel" : "");
    row.dataset.kind = ev.kind;
    const c = row.children;
    c[0].textContent = timeText(ev.ts);
    c[1].textContent = ev.dir === "in" ? "\u2192 in" : ev.dir === "out" ? "\u2190 out" : "";
    c[1].className = "c-d" + (ev.dir ? " d-" + ev.dir : "");
    c[2].textContent = clientLabel(ev.client);
    c[2].title = ev.client || "";
    c[3].textContent = ev.nsp || "";
    let name = label(ev);
    if (ev.kind === "flag") name = "\u2691 " + name + (ev.name ? " " + ev.name : "");
    if (ev.ack_id !== undefined && ev.kind === "sio.event") name += ` #${ev.ack_id}`;
    c[4].textContent = name;
    c[5].textContent = ev.size !== undefined ? ev.size : "";
    let info = preview(ev);
    if (ev.ackSeq) info = `\u21a9 acked in ${ev.ackMs} ms  ` + info;
    c[6].textContent = info;
    c[6].title = ev.kind === "flag" ? `${ev.extra.cause || ""}\nfix: ${ev.extra.hint || ""}` : "";
    c[6].className = "c-i" + (ev.ackSeq ? " acked" : "");
  }

  function render() {
    spacer.style.height = `${view.length * ROW_H}px`;
    if (follow) rowsEl.scrollTop = rowsEl.scrollHeight;
    const first = Math.max(0, Math.floor(rowsEl.scrollTop / ROW_H) - OVERSCAN);
    const count = Math.ceil(rowsEl.clientHeight / ROW_H) + 2 * OVERSCAN;
    const last = Math.min(view.length, first + count);
    while (pool.length < last - first) pool.push(makeRow());
    for (let k = 0; k < pool.length; k++) {
      const row = pool[k], at = first + k;
      if (at >= last) { row.hidden = true; continue; }
      row.hidden = false;
      row.style.transform = `translateY(${at * ROW_H}px)`;
      fill(row, buf[view[at]]);
    }
    const total = buf.length + held.length;
    $("shown").dataset.last = lastSeq;
    $("shown").textContent = `${view.length} of ${total} shown` +
      (held.length ? `, ${held.length} held while paused` : "");
    $("pause").textContent = paused ? `Resume (${held.length} new)` : "Pause";
    $("dropped").textContent = dropped ? `${dropped} records skipped: this page fell behind` : "";
  }

  rowsEl.addEventListener("scroll", () => {
    follow = rowsEl.scrollTop + rowsEl.clientHeight >= rowsEl.scrollHeight - ROW_H;
    dirty = true;
  });

  function frame() {
    if (options.clients || options.nsps) updateOptions();
    if (dirty) { dirty = false; render(); }
    requestAnimationFrame(frame);
  }

  // -- details --------------------------------------------------------------------------------

  function select(seq) {
    selected = seq;
    const at = indexOfSeq(seq);
    if (at >= 0) showDetail(buf[at]);
    dirty = true;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function hexdump(hex) {
    const lines = [];
    for (let off = 0; off < hex.length / 2; off += 16) {
      const bytes = [];
      let ascii = "";
      for (let k = off; k < Math.min(off + 16, hex.length / 2); k++) {
        const h = hex.substr(k * 2, 2);
        bytes.push(h);
        const n = parseInt(h, 16);
        ascii += n >= 32 && n < 127 ? String.fromCharCode(n) : ".";
      }
      lines.push(`${off.toString(16).padStart(6, "0")}  ${bytes.join(" ").padEnd(47)}  ${ascii}`);
    }
    return lines.join("\n");
  }

  function payloadBlocks(parent, value) {
    if (value && typeof value === "object" && typeof value.$cut === "number") {
      parent.appendChild(el("p", "muted", `payload of ${value.$cut} bytes, the first part shown:`));
      parent.appendChild(el("pre", "", value.text));
      return;
    }
    const binaries = [];
    const text = JSON.stringify(value, (k, v) => {
      if (isBytes(v)) { binaries.push(v); return `<binary #${binaries.length}: ${v.$bytes} bytes>`; }
      return v;
    }, 2);
    parent.appendChild(el("pre", "json", text));
    binaries.forEach((b, k) => {
      const cut = b.hex.length / 2 < b.$bytes ? ` (first ${b.hex.length / 2} shown)` : "";
      parent.appendChild(el("h2", "", `binary #${k + 1}: ${b.$bytes} bytes${cut}`));
      parent.appendChild(el("pre", "hex", hexdump(b.hex)));
    });
  }

  function showDetail(ev) {
    const box = $("detail");
    box.textContent = "";
    const x = Object.assign({}, ev.extra || {});
    if (ev.kind === "flag") {
      box.appendChild(el("p", "cause", `\u2691 ${x.flag}${x.code ? " (" + x.code + ")" : ""}: ${x.cause || ""}`));
      if (x.hint) box.appendChild(el("p", "hint", `fix: ${x.hint}`));
      for (const k of ["flag", "code", "cause", "hint"]) delete x[k];
    }
    const dl = el("dl");
    const c = clients.get(ev.client);
    const facts = [["kind", ev.kind], ["time", new Date(ev.ts * 1000).toISOString()],
      ["client", ev.client ? `${ev.client}${c ? " (" + c.role + ")" : ""}` : undefined],
      ["direction", ev.dir === "in" ? "in: client \u2192 server" : ev.dir === "out" ? "out: server \u2192 client" : undefined],
      ["namespace", ev.nsp], ["name", ev.name], ["ack id", ev.ack_id], ["size", ev.size],
      ["transport", ev.transport], ["connection", ev.conn], ["socket.io sid", ev.sio_sid]];
    for (const [k, v] of facts) {
      if (v === undefined || v === null) continue;
      dl.appendChild(el("dt", "", k));
      dl.appendChild(el("dd", "", String(v)));
    }
    box.appendChild(dl);
    const link = (seq, text) => {
      const a = el("a", "", text);
      a.addEventListener("click", () => select(seq));
      return a;
    };
    if (ev.kind === "sio.ack" && ev.pair) {
      const p = el("p", "", "");
      p.appendChild(link(ev.pair, `answers event #${ev.pair}`));
      p.appendChild(document.createTextNode(` after ${ev.ms} ms`));
      box.appendChild(p);
    }
    if (ev.ackSeq) {
      const p = el("p", "", "");
      p.appendChild(link(ev.ackSeq, `acked by #${ev.ackSeq}`));
      p.appendChild(document.createTextNode(` after ${ev.ackMs} ms`));
      box.appendChild(p);
    }
    if (ev.args !== undefined) {
      box.appendChild(el("h2", "", "payload"));
      payloadBlocks(box, ev.args);
    }
    if (Object.keys(x).length) {
      box.appendChild(el("h2", "", "fields"));
      payloadBlocks(box, x);
    }
  }

  // -- filters and pause ----------------------------------------------------------------------

  function setOptions(select, values, labelOf) {
    const current = select.value;
    while (select.options.length > 1) select.remove(1);
    for (const v of values) {
      const o = document.createElement("option");
      o.value = v;
      o.textContent = labelOf ? labelOf(v) : v;
      select.appendChild(o);
    }
    select.value = current;
  }

  function updateOptions() {
    if (options.clients) setOptions($("f-client"), [...seenClients].sort(), clientLabel);
    if (options.nsps) setOptions($("f-nsp"), [...seenNsps].sort());
    options.clients = options.nsps = false;
  }

  for (const key of ["client", "nsp", "dir", "kind"]) {
    $("f-" + key).addEventListener("change", (e) => { filter[key] = e.target.value; refilter(); });
  }
  for (const key of ["name", "text"]) {
    $("f-" + key).addEventListener("input", (e) => {
      filter[key] = e.target.value.trim().toLowerCase();
      refilter();
    });
  }

  $("pause").addEventListener("click", () => {
    paused = !paused;
    $("pause").classList.toggle("on", paused);
    if (!paused) {
      for (const ev of held) append(ev);
      held = [];
      trim();
      follow = true;
    }
    dirty = true;
  });

  // -- panels from the snapshot -----------------------------------------------------------------

  function ago(ts, now) {
    if (mode !== "live") return timeText(ts);
    const s = Math.max(0, now - ts);
    return s < 1 ? "now" : s < 90 ? `${s.toFixed(0)} s ago` : `${(s / 60).toFixed(0)} min ago`;
  }

  function drawConnections(list, now) {
    const body = $("conns").tBodies[0];
    body.textContent = "";
    const sorted = list.slice().sort((a, b) => (a.state === "open") === (b.state === "open")
      ? b.last - a.last : a.state === "open" ? -1 : 1);
    for (const c of sorted.slice(0, 200)) {
      const tr = document.createElement("tr");
      tr.className = (c.state === "open" ? "open" : "closed") + (c.flags ? " flagged" : "");
      tr.dataset.client = c.id;
      const who = el("td", "", c.kind === "http" ? `hook ${c.peer || ""}` : c.id);
      who.title = `${c.id}\n${c.peer || ""}\n${c.user_agent || ""}`;
      const role = el("td");
      role.appendChild(el("span", "role role-" + c.role, c.role));
      const transport = c.kind === "http" ? "http POST"
        : c.upgraded ? "polling \u2192 websocket" : c.transport || "?";
      const nsps = el("td");
      for (const [n, st] of Object.entries(c.nsps || {})) {
        const span = el("span", "nsp " + st, n);
        span.title = st;
        nsps.appendChild(span);
      }
      const state = c.kind === "http" ? (c.reason || "posting")
        : c.state + (c.reason ? `: ${c.reason}` : "");
      tr.append(who, role, el("td", "", transport), nsps, el("td", "", state),
        el("td", "", `${c.in} / ${c.out}`),
        el("td", c.flags ? "warn-text" : "", c.flags ? `${c.flags} (${c.last_flag})` : ""),
        el("td", "", ago(c.last, now)));
      tr.addEventListener("click", () => {
        updateOptions();
        $("f-client").value = c.id;
        filter.client = c.id;
        refilter();
      });
      body.appendChild(tr);
    }
    const open = list.filter((c) => c.kind === "session" && c.state === "open").length;
    $("conns-count").textContent = `${open} open, ${list.length} seen`;
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function titled(node, text) { node.appendChild(svg("title", {}, text)); return node; }
  function causeText(causes) {
    return causes.map((c) => `${c.count} \u00d7 ${c.code}: ${c.cause}`).join("\n");
  }

  function box(g, x, y, w, h, text, cls, title) {
    const node = svg("g", { class: "node " + cls });
    node.appendChild(svg("rect", { x, y, width: w, height: h, rx: 5 }));
    node.appendChild(svg("text", { x: x + w / 2, y: y + h / 2 + 4, "text-anchor": "middle" },
      text.length > 22 ? text.slice(0, 21) + "\u2026" : text));
    if (title) titled(node, title);
    g.appendChild(node);
  }

  function drawFlow(flow) {
    const root = $("flow");
    root.textContent = "";
    const defs = svg("defs");
    for (const [id, color] of [["h-in", "#2563eb"], ["h-out", "#059669"], ["h-lost", "#dc2626"]]) {
      const m = svg("marker", { id, viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
        markerHeight: 7, orient: "auto-start-reverse" });
      m.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: color }));
      defs.appendChild(m);
    }
    root.appendChild(defs);
    const src = flow.sources.nodes.slice(), dst = flow.receivers.nodes.slice();
    if (flow.sources.more) src.push({ id: "more", more: true, count: flow.sources.more_count, label: `+${flow.sources.more} more`, lost: 0, causes: [], open: true });
    if (flow.receivers.more) dst.push({ id: "more", more: true, count: flow.receivers.more_count, label: `+${flow.receivers.more} more`, lost: 0, causes: [], open: true });
    const ghost = flow.lost_towards_receivers > 0;
    const rows = Math.max(src.length, dst.length + (ghost ? 1 : 0), 1);
    const H = Math.max(120, rows * 40 + 20);
    root.setAttribute("viewBox", `0 0 640 ${H}`);
    const sx = 240, sw = 160, sy = H / 2 - 26, sh = 52;
    const yOf = (k, n) => (H / (n + 1)) * (k + 1);
    const g = svg("g");
    root.appendChild(g);
    const nodeName = (n) => n.more ? n.label : n.role === "hook" && n.id.startsWith("http ")
      ? `hook ${n.peer || ""}` : `${n.role} ${n.id.slice(0, 8)}`;
    src.forEach((n, k) => {
      const y = yOf(k, src.length);
      const lost = n.lost > 0;
      const arrow = svg("path", { d: `M 142 ${y} L ${sx - 4} ${H / 2 + (y - H / 2) * 0.3}`,
        class: "arrow in", "marker-end": "url(#h-in)" });
      g.appendChild(arrow);
      const mx = (142 + sx) / 2, my = (y + H / 2 + (y - H / 2) * 0.3) / 2;
      g.appendChild(svg("text", { x: mx, y: my - 5, "text-anchor": "middle", class: "count" }, String(n.count)));
      if (lost) {
        g.appendChild(titled(svg("text", { x: sx - 8, y: my + 14, "text-anchor": "end", class: "lostmark" },
          `\u2715 ${n.lost} lost`), causeText(n.causes)));
      }
      box(g, 8, y - 15, 134, 30, nodeName(n), n.open ? "source" : "source closed", n.id);
    });
    if (!src.length) g.appendChild(svg("text", { x: 75, y: H / 2, "text-anchor": "middle", class: "muted" }, "no hook yet"));
    box(g, sx, sy, sw, sh, "server", "server",
      `in: ${flow.in}  out: ${flow.out}` + (flow.lost_in_server ? `\n${causeText(flow.server_causes)}` : ""));
    g.appendChild(svg("text", { x: sx + sw / 2, y: sy - 6, "text-anchor": "middle" }, `${flow.in} in \u2192 ${flow.out} out`));
    if (flow.lost_in_server) {
      g.appendChild(titled(svg("text", { x: sx + sw / 2, y: sy + sh + 14, "text-anchor": "middle", class: "lostmark" },
        `\u2715 ${flow.lost_in_server} lost in the server`), causeText(flow.server_causes)));
    }
    const slots = dst.length + (ghost ? 1 : 0);
    dst.forEach((n, k) => {
      const y = yOf(k, slots);
      const fromY = H / 2 + (y - H / 2) * 0.3;
      g.appendChild(svg("path", { d: `M ${sx + sw + 4} ${fromY} L 494 ${y}`, class: "arrow out", "marker-end": "url(#h-out)" }));
      g.appendChild(svg("text", { x: (sx + sw + 494) / 2, y: (fromY + y) / 2 - 5, "text-anchor": "middle", class: "count" }, String(n.count)));
      box(g, 498, y - 15, 134, 30, nodeName(n), n.open ? "receiver" : "receiver closed", n.id);
    });
    if (ghost) {
      const y = yOf(dst.length, slots);
      const fromY = H / 2 + (y - H / 2) * 0.3;
      g.appendChild(svg("path", { d: `M ${sx + sw + 4} ${fromY} L 494 ${y}`, class: "arrow lost", "marker-end": "url(#h-lost)" }));
      g.appendChild(titled(svg("text", { x: (sx + sw + 494) / 2, y: (fromY + y) / 2 + 14, "text-anchor": "middle", class: "lostmark" },
        `\u2715 ${flow.lost_towards_receivers} lost`), causeText(flow.out_causes)));
      box(g, 498, y - 15, 134, 30, "nobody listening", "ghost", causeText(flow.out_causes));
    }
    const list = $("flow-lost");
    list.textContent = "";
    const where = [];
    src.forEach((n) => n.causes.forEach((c) => where.push([`${nodeName(n)} \u2192 server`, c])));
    flow.server_causes.forEach((c) => where.push(["inside the server", c]));
    flow.out_causes.forEach((c) => where.push(["server \u2192 receivers", c]));
    for (const [at, c] of where) {
      list.appendChild(el("li", "", `${c.count} lost ${at} (${c.code}): ${c.cause}`));
    }
  }

  function ms(p) {
    if (!p || !p.count) return "-";
    if (p.p50 !== undefined) return `${p.p50} / ${p.p95} / ${p.p99} ms`;
    return `${p.p50_ms} / ${p.p95_ms} / ${p.max_ms} ms`;
  }

  function drawStats(s) {
    $("s-in").textContent = mode === "live" ? s.rate_in : s.peak_in;
    $("s-out").textContent = mode === "live" ? s.rate_out : s.peak_out;
    $("s-relay").textContent = ms(s.relay_ms);
    $("s-ack").textContent = ms(s.ack_ms);
    $("s-ingest").textContent = ms(s.ingest_ms);
    $("s-lost").textContent = s.lost;
    $("s-lost").parentElement.classList.toggle("alarm", s.lost > 0);
    $("s-reconnects").textContent = s.reconnects;
    $("s-clients").textContent = s.clients_open;
    $("s-flags").textContent = Object.values(s.flags).reduce((a, b) => a + b, 0);
  }

  function drawCluster(c) {
    $("s-cluster-stat").hidden = !c;
    if (!c) return;
    const others = Object.entries(c.nodes).map(([node, nsps]) =>
      `${node}: ${Object.values(nsps).reduce((a, b) => a + b, 0)} client(s)`);
    const delivered = Object.entries(c.delivered_elsewhere).map(([node, n]) => `${n} delivered on ${node}`);
    $("s-cluster").textContent = [`node ${c.node} (${c.state || "joining"})`, ...others, ...delivered].join(" \u00b7 ");
    $("s-cluster-stat").classList.toggle("alarm", c.state === "off");
  }

  function onState(msg) {
    clients = new Map(msg.clients.map((c) => [c.id, c]));
    for (const c of msg.clients) if (!seenClients.has(c.id)) { seenClients.add(c.id); options.clients = true; }
    drawConnections(msg.clients, msg.stats.now);
    drawFlow(msg.flow);
    drawStats(msg.stats);
    drawCluster(msg.cluster);
    dirty = true;
  }

  // -- the connection to the sniffer --------------------------------------------------------------

  function setStatus(text, cls) {
    const s = $("status");
    s.textContent = text;
    s.className = "badge status " + cls;
  }

  let retry = 500;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${location.host}/ws` + (token ? `?token=${encodeURIComponent(token)}` : "");
    const ws = new WebSocket(url);
    ws.onopen = () => { retry = 500; setStatus(mode === "live" ? "connected" : "loaded", "up"); };
    ws.onmessage = (e) => {
      const msg = JSON.parse(e.data);
      if (msg.t === "records") {
        dropped += msg.dropped;
        take(msg.items);
      } else if (msg.t === "state") {
        onState(msg);
      } else if (msg.t === "hello") {
        cap = msg.buffer;
        mode = msg.mode;
        $("mode").textContent = mode;
        if (mode !== "live") {
          $("s-in").parentElement.title = "the busiest second of the loaded files, events in";
          $("s-out").parentElement.title = "the busiest second of the loaded files, events out";
        }
        $("title").textContent = msg.title;
        document.title = msg.title;
        if (msg.seq < lastSeq) {
          // A new sniffer behind the same address: its numbering starts again.
          buf = []; view = []; held = []; lastSeq = 0;
        }
      }
    };
    ws.onclose = () => {
      setStatus(mode === "live" ? "disconnected: retrying" : "disconnected", "down");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 5000);
    };
  }

  requestAnimationFrame(frame);
  connect();
})();
