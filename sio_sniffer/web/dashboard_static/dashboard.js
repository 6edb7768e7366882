// The dashboard namespace test: connect from this browser to every configured namespace of the
// server, show what each one does, and report it back to the page server (POST results) so
// `sio-sniffer diagnose --browser` can say what a real browser received.
"use strict";

(function () {
  const MAX_ROWS = 500; // event rows kept on screen per namespace; the counts keep going
  const MAX_REPORT_EVENTS = 500; // events per results POST; the rest follow in the next one
  const pageId = Math.random().toString(36).slice(2, 10);
  const namespaces = new Map();
  const pending = [];
  let config = null;
  let clientName = null;
  let eventSeq = 0;
  let reportTimer = null;
  let reporting = false;
  let dirty = false;

  const $ = (id) => document.getElementById(id);

  function isoNow(t) { return new Date(t).toISOString(); }

  function clock(t) {
    const d = new Date(t);
    const pad = (n, w = 2) => String(n).padStart(w, "0");
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function bytesOf(value) {
    return value instanceof ArrayBuffer ? new Uint8Array(value)
      : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }

  // Payloads as JSON: binary becomes {"_binary": length, "hex": first bytes}.
  function jsonSafe(value, depth = 0) {
    if (value instanceof ArrayBuffer || ArrayBuffer.isView(value)) {
      const bytes = bytesOf(value);
      const hex = Array.from(bytes.subarray(0, 32), (b) => b.toString(16).padStart(2, "0")).join("");
      return { _binary: bytes.length, hex };
    }
    if (depth > 32) return "…";
    if (Array.isArray(value)) return value.map((v) => jsonSafe(v, depth + 1));
    if (value && typeof value === "object") {
      const out = {};
      for (const key of Object.keys(value)) out[key] = jsonSafe(value[key], depth + 1);
      return out;
    }
    if (typeof value === "function") return "[function]";
    return value === undefined ? null : value;
  }

  function loadServerClient() {
    // Node socket.io servers serve their own client; python-socketio servers do not.
    return new Promise((resolve) => {
      const script = document.createElement("script");
      const timer = setTimeout(() => resolve(null), config.script_timeout_ms);
      script.src = config.url + config.path + "socket.io.js";
      script.onload = () => {
        clearTimeout(timer);
        resolve(typeof window.io === "function" ? window.io : null);
      };
      script.onerror = () => {
        clearTimeout(timer);
        resolve(null);
      };
      document.head.appendChild(script);
    });
  }

  async function chooseClient() {
    if (config.client === "auto") {
      const served = await loadServerClient();
      if (served) {
        clientName = "server";
        return served;
      }
    }
    clientName = "builtin";
    return window.SioSniffer.io;
  }

  function card(nsp) {
    const section = document.createElement("section");
    section.className = "nsp";
    section.dataset.nsp = nsp;
    section.innerHTML = `<header><h2></h2><span class="state"></span></header>
      <div class="error"></div>
      <dl>
        <dt>transport</dt><dd class="transport">–</dd>
        <dt>sid</dt><dd class="sid">–</dd>
        <dt>test emit</dt><dd class="ack">–</dd>
        <dt>events</dt><dd class="count">0</dd>
        <dt>connects</dt><dd class="connects">0</dd>
        <dt>reconnects</dt><dd class="reconnects">0</dd>
        <dt>disconnects</dt><dd class="disconnects">0</dd>
      </dl>
      <table class="events"><thead><tr><th>time</th><th>event</th><th>payload</th></tr></thead>
      <tbody></tbody></table>`;
    section.querySelector("h2").textContent = nsp;
    $("namespaces").appendChild(section);
    return section;
  }

  function render(ns) {
    const el = ns.el;
    const state = el.querySelector(".state");
    state.textContent = ns.state;
    state.dataset.state = ns.state;
    el.querySelector(".error").textContent = ns.error || "";
    el.querySelector(".transport").textContent = ns.transport
      ? ns.transport + (ns.upgraded ? " (upgraded from polling)" : "") : "–";
    el.querySelector(".sid").textContent = ns.sid || "–";
    const ack = ns.ack;
    el.querySelector(".ack").textContent = ack.status === "answered"
      ? `ack after ${ack.ms.toFixed(1)} ms` : ack.status === "none"
        ? `no ack within ${config.ack_timeout_ms / 1000} s` : ack.status;
    el.querySelector(".count").textContent = String(ns.events);
    el.querySelector(".connects").textContent = String(ns.connects);
    el.querySelector(".reconnects").textContent =
      `${ns.reconnects} (attempts ${ns.reconnectAttempts})`;
    el.querySelector(".disconnects").textContent = ns.disconnects.length
      ? `${ns.disconnects.length} (last: ${ns.disconnects[ns.disconnects.length - 1].reason})` : "0";
  }

  function addRow(ns, record) {
    const row = document.createElement("tr");
    row.dataset.seq = String(record.seq);
    for (const [cls, text] of [["time", clock(record.t)], ["name", record.name],
      ["payload", JSON.stringify(record.args)]]) {
      const cell = document.createElement("td");
      cell.className = cls;
      cell.textContent = text;
      if (cls === "time") cell.title = record.ts;
      row.appendChild(cell);
    }
    const body = ns.el.querySelector("tbody");
    body.appendChild(row);
    while (body.rows.length > MAX_ROWS) body.deleteRow(0);
  }

  function snapshot(ns) {
    return {
      nsp: ns.nsp, state: ns.state, transport: ns.transport, upgraded: ns.upgraded, sid: ns.sid,
      error: ns.error, errors: ns.errors, connects: ns.connects, reconnects: ns.reconnects,
      reconnect_attempts: ns.reconnectAttempts, disconnects: ns.disconnects, events: ns.events,
      ack: ns.ack,
    };
  }

  function scheduleReport() {
    dirty = true;
    if (reportTimer === null && !reporting) reportTimer = setTimeout(report, 50);
  }

  async function report() {
    reportTimer = null;
    if (reporting) return;
    reporting = true;
    dirty = false;
    const events = pending.slice(0, MAX_REPORT_EVENTS);
    const body = {
      page: pageId, client: clientName, user_agent: navigator.userAgent, url: config.url,
      transports: config.transports, time: isoNow(Date.now()),
      namespaces: [...namespaces.values()].map(snapshot), events,
    };
    let retry = false;
    try {
      const response = await fetch("results", { method: "POST", body: JSON.stringify(body),
        headers: { "Content-Type": "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const answer = await response.json();
      while (pending.length && pending[0].seq <= answer.stored) pending.shift();
      $("reported").textContent = `${clock(Date.now())} (${answer.stored} events)`;
    } catch (err) {
      retry = true;
      $("reported").textContent = `failed: ${err.message || err}`;
    }
    reporting = false;
    if (retry) reportTimer = setTimeout(report, 1000);
    else if (dirty || pending.length) reportTimer = setTimeout(report, 50);
  }

  function currentTransport(socket) {
    const engine = socket.io && socket.io.engine;
    return engine && engine.transport ? engine.transport.name : null;
  }

  function watchManager(manager, all) {
    manager.on("reconnect_attempt", () => {
      for (const ns of all) {
        ns.reconnectAttempts += 1;
        if (ns.state !== "connected" && ns.state !== "error") ns.state = "reconnecting";
        render(ns);
      }
      scheduleReport();
    });
    manager.on("open", () => {
      for (const ns of all) ns.upgraded = false;
      manager.engine.on("upgrade", (transport) => {
        for (const ns of all) {
          ns.upgraded = true;
          if (ns.state === "connected") ns.transport = transport.name;
          render(ns);
        }
        scheduleReport();
      });
    });
  }

  function testEmit(ns, socket) {
    const started = performance.now();
    ns.ack = { status: "pending", ms: null, reply: null };
    const timer = setTimeout(() => {
      if (ns.ack.status === "pending") {
        ns.ack.status = "none";
        render(ns);
        scheduleReport();
      }
    }, config.ack_timeout_ms);
    socket.emit(config.ping_event, { sent: Date.now(), nsp: ns.nsp }, (...reply) => {
      clearTimeout(timer);
      ns.ack = { status: "answered", ms: performance.now() - started, reply: jsonSafe(reply) };
      render(ns);
      scheduleReport();
    });
  }

  function watch(ioFn, nsp, managers) {
    const ns = {
      nsp, state: "connecting", transport: null, upgraded: false, sid: null, error: null,
      errors: [], connects: 0, reconnects: 0, reconnectAttempts: 0, disconnects: [], events: 0,
      ack: { status: "not sent", ms: null }, el: card(nsp),
    };
    namespaces.set(nsp, ns);
    const opts = { transports: config.transports, path: config.path, reconnectionDelay: 500,
      reconnectionDelayMax: 3000 };
    if (config.auth !== null) opts.auth = config.auth;
    const socket = ioFn(config.url + (nsp === "/" ? "" : nsp), opts);
    const group = managers.get(socket.io) || [];
    if (!managers.has(socket.io)) {
      managers.set(socket.io, group);
      watchManager(socket.io, group);
    }
    group.push(ns);
    setTimeout(() => {
      if (ns.state === "connecting" || ns.state === "reconnecting") {
        ns.state = "unanswered";
        ns.error = `no answer to CONNECT within ${config.connect_timeout_ms / 1000} s`;
        ns.errors.push({ t: Date.now(), ts: isoNow(Date.now()), message: ns.error });
        render(ns);
        scheduleReport();
      }
    }, config.connect_timeout_ms);

    socket.on("connect", () => {
      ns.connects += 1;
      if (ns.connects > 1) ns.reconnects += 1;
      ns.state = "connected";
      ns.sid = socket.id;
      ns.error = null;
      ns.transport = currentTransport(socket);
      render(ns);
      scheduleReport();
      testEmit(ns, socket);
    });
    socket.on("connect_error", (err) => {
      const raw = err && err.raw !== undefined ? err.raw : err && err.data;
      let message = (err && err.message) || String(err);
      if (raw && typeof raw === "object") {
        const extra = Object.keys(raw).filter((k) => k !== "message");
        if (extra.length) message += " " + JSON.stringify(jsonSafe(raw));
      }
      ns.state = "error";
      ns.error = message;
      ns.errors.push({ t: Date.now(), ts: isoNow(Date.now()), message });
      render(ns);
      scheduleReport();
    });
    socket.on("disconnect", (reason) => {
      ns.state = "disconnected";
      ns.sid = null;
      ns.disconnects.push({ t: Date.now(), ts: isoNow(Date.now()), reason: String(reason) });
      render(ns);
      scheduleReport();
    });
    socket.onAny((name, ...args) => {
      if (typeof args[args.length - 1] === "function") {
        args.pop()({ received: true, by: "sio-sniffer dashboard-test" });
      }
      const t = Date.now();
      const record = { seq: ++eventSeq, nsp, name, args: jsonSafe(args), t, ts: isoNow(t) };
      ns.events += 1;
      pending.push(record);
      addRow(ns, record);
      render(ns);
      scheduleReport();
    });
    render(ns);
  }

  async function main() {
    config = await (await fetch("config.json", { cache: "no-store" })).json();
    $("target").textContent = config.url;
    $("transports").textContent = config.transports.join(", ");
    $("auth").textContent = config.auth_fingerprint || "none";
    const ioFn = await chooseClient();
    $("client").textContent = clientName === "server"
      ? `the server's ${config.path}socket.io.js` : "sio-sniffer built-in client";
    const managers = new Map();
    for (const nsp of config.namespaces) watch(ioFn, nsp, managers);
    scheduleReport();
  }

  main().catch((err) => {
    $("reported").textContent = `page failed: ${err.message || err}`;
  });
})();
