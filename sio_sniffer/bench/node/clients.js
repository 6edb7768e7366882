// The benchmark's Node socket.io clients: `dashboards` clients in the "dashboards" room and one
// hook client whose "hook" events the server relays to them. One process holds them all, so one
// clock times an event from the hook's emit to each dashboard's receipt.
// Options come as one JSON argument:
//   {url, mode: "burst"|"paced"|"fanout"|"soak", transports, dashboards, events, payload,
//    rate (paced and soak, events/s; a soak with rate 0 goes as fast as it can), interval
//    (fanout, ms between broadcasts), window (soak, events in flight at most), stallMs (give up
//    when no delivery arrives for this long)}
// Prints JSON lines: {"event":"connected","ms"}, {"event":"progress","done","of"} (soak, every
// tenth), then {"event":"result", ...} and exits; {"event":"error","message"} on failure.
"use strict";
const { io } = require("socket.io-client");
const { performance } = require("perf_hooks");

const opts = JSON.parse(process.argv[2]);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const now = () => performance.now();
const pad = "x".repeat(opts.payload ?? 100);
const total = opts.events;
const D = opts.dashboards;

function connect(role) {
  return new Promise((resolve, reject) => {
    const socket = io(opts.url, {
      transports: opts.transports, reconnection: false, forceNew: true, auth: { role },
      timeout: 60000,
    });
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => reject(new Error(`${role} could not connect: ${err.message}`)));
  });
}

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

async function main() {
  const t0 = now();
  const dashboards = await Promise.all(Array.from({ length: D }, () => connect("dashboard")));
  const hook = await connect("hook");
  out({ event: "connected", ms: now() - t0, clients: D + 1 });

  const keepLatency = opts.mode === "paced" || opts.mode === "fanout";
  const latencies = [];
  const received = new Array(D).fill(0);
  let deliveries = 0;
  let outOfOrder = 0;
  let disconnects = 0;
  let lastDelivery = now();
  let finish;
  const finished = new Promise((resolve) => { finish = resolve; });
  const expected = total * D;
  const progressStep = Math.max(1, Math.floor(total / 10));
  let nextProgress = progressStep;
  let onDelivery = () => {};

  dashboards.forEach((socket, k) => {
    socket.on("event", (data) => {
      const t = now();
      if (keepLatency) latencies.push(t - data.t);
      if (data.i !== received[k]) outOfOrder += 1;
      received[k] += 1;
      deliveries += 1;
      lastDelivery = t;
      if (opts.mode === "soak" && deliveries / D >= nextProgress) {
        out({ event: "progress", done: Math.floor(deliveries / D), of: total });
        nextProgress += progressStep;
      }
      onDelivery();
      if (deliveries === expected) finish(true);
    });
    socket.on("disconnect", () => { disconnects += 1; });
  });

  let sent = 0;
  const emit = () => { hook.emit("hook", { i: sent, t: now(), pad }); sent += 1; };
  const start = now();
  if (opts.mode === "burst") {
    while (sent < total) emit();
  } else if (opts.mode !== "soak" || opts.rate > 0) {
    // paced, fanout, and the soak at a sustained rate (never more than `window` in flight)
    const perMs = opts.mode === "fanout" ? 1 / opts.interval : opts.rate / 1000;
    const inFlight = opts.mode === "soak" ? opts.window * D : Infinity;
    emit();
    const timer = setInterval(() => {
      const due = Math.min(total, 1 + Math.floor((now() - start) * perMs));
      while (sent < due && sent * D - deliveries < inFlight) emit();
      if (sent >= total) clearInterval(timer);
    }, opts.mode === "fanout" ? 10 : 1);
  } else {
    // soak as fast as it goes: at most `window` events in flight, refilled by half a window
    const half = Math.max(1, Math.floor(opts.window / 2));
    let refilling = false;
    const refill = () => {
      refilling = false;
      const end = Math.min(total, sent + half);
      while (sent < end) emit();
    };
    onDelivery = () => {
      if (!refilling && sent < total && sent * D - deliveries <= half * D) {
        refilling = true;
        setImmediate(refill);
      }
    };
    const end = Math.min(total, opts.window);
    while (sent < end) emit();
  }

  const stallMs = opts.stallMs ?? 15000;
  const watchdog = setInterval(() => {
    if (now() - lastDelivery > stallMs && now() - start > stallMs) finish(false);
  }, 250);
  const complete = await finished;
  const elapsedMs = now() - start;
  clearInterval(watchdog);
  latencies.sort((a, b) => a - b);
  out({
    event: "result", complete, sent, expected, deliveries, out_of_order: outOfOrder, disconnects,
    elapsed_ms: elapsedMs, per_s: deliveries / (elapsedMs / 1000),
    latency_ms: keepLatency ? {
      p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99),
      max: latencies.length ? latencies[latencies.length - 1] : null,
    } : null,
  });
  for (const socket of [hook, ...dashboards]) socket.disconnect();
}

main().then(
  () => process.exit(0),
  (err) => { out({ event: "error", message: String((err && err.message) || err) }); process.exit(1); },
);
