// A Node socket.io-client for the relay tests. Options come as one JSON argument:
// {url, transports, scenario: "full" | "burst", n, pace, perMessageDeflate}. Prints JSON lines:
// "full": {"event":"transcript","transcript":{...},"received":[frames],"sent":[frames]}
// "burst": {"event":"burst_done","count":N}, then {"event":"pings","count":K} after K more pings,
// and {"event":"disconnect","reason"} whenever the connection drops.
"use strict";
const { Manager } = require("socket.io-client");
const parser = require("engine.io-parser");

const opts = JSON.parse(process.argv[2]);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const AUTH = { token: "s3cret", n: 1 };
const PAYLOAD = ["a", 1, { deep: [true, null, "é€😀"] }];

function norm(v) {
  if (Buffer.isBuffer(v)) return { $bin: v.toString("hex") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("hex") };
  if (Array.isArray(v)) return v.map(norm);
  if (v && typeof v === "object") {
    const r = {};
    for (const k of Object.keys(v)) r[k] = norm(v[k]);
    return r;
  }
  return v;
}

function frame(packet) {
  return new Promise((resolve) =>
    parser.encodePacket(packet, true, (encoded) =>
      resolve(typeof encoded === "string" ? { text: encoded } : { bin: Buffer.from(encoded).toString("hex") })));
}

function once(socket, name) {
  return new Promise((resolve) => socket.once(name, (...args) => resolve(args)));
}

function managerFor(extra) {
  return new Manager(opts.url, {
    transports: opts.transports,
    reconnection: false,
    perMessageDeflate: opts.perMessageDeflate ?? { threshold: 1024 },
    ...extra,
  });
}

async function full() {
  const manager = managerFor({});
  const received = [];
  const sent = [];
  const frames = [];
  manager.on("open", () => {
    const engine = manager.engine;
    engine.on("packet", (p) => frames.push(frame(p).then((f) => received.push(f))));
    engine.on("packetCreate", (p) => frames.push(frame(p).then((f) => sent.push(f))));
  });
  const transcript = {};
  const sockets = {};
  const welcomes = [];
  for (const nsp of ["/", "/admin"]) {
    const socket = manager.socket(nsp, { auth: AUTH });
    socket.on("question", (q, ack) => ack({ answer: q }));
    sockets[nsp] = socket;
    welcomes.push(once(socket, "welcome").then(([data]) => { transcript[`welcome ${nsp}`] = norm(data); }));
  }
  await Promise.all(welcomes);
  for (const nsp of ["/", "/admin"]) {
    const socket = sockets[nsp];
    transcript[`echo ${nsp}`] = norm(await socket.emitWithAck("echo", ...PAYLOAD));
    const back = once(socket, "bin_back");
    transcript[`bin ack ${nsp}`] = norm(await socket.emitWithAck("bin", Buffer.from([0, 1, 2, 255, 254])));
    transcript[`bin_back ${nsp}`] = norm(await back);
    const answer = once(socket, "answer_was");
    socket.emit("ask", { q: nsp });
    transcript[`answer_was ${nsp}`] = norm(await answer);
  }
  transcript["big echo"] = norm(await sockets["/"].emitWithAck("echo", "x".repeat(20000)));
  if (opts.transports.length > 1 && manager.engine.transport.name !== "websocket") {
    await once(manager.engine, "upgrade");
  }
  transcript.transport = manager.engine.transport.name;

  const refused = managerFor({}).socket("/admin", { auth: { token: "bad" } });
  const [err] = await once(refused, "connect_error");
  transcript["connect_error /admin"] = err.message;
  refused.io.engine.close();

  // a WebSocket compresses on a worker thread: wait for its close handshake, which follows the
  // DISCONNECT packets, so they are on the wire before the process exits
  const ws = manager.engine.transport.ws;
  const closed = ws ? once(ws, "close") : once(manager.engine, "close");
  for (const socket of Object.values(sockets)) socket.disconnect();
  await closed;
  await Promise.all(frames);
  out({ event: "transcript", transcript, received, sent });
}

async function burst() {
  const socket = managerFor({}).socket("/");
  socket.on("disconnect", (reason) => out({ event: "disconnect", reason }));
  await once(socket, "connect");
  let count = 0;
  socket.on("tick", (i) => { if (i === count) count += 1; });
  const done = once(socket, "burst_done");
  socket.emit("burst", opts.n, opts.pace);
  await done;
  out({ event: "burst_done", count });
  let pings = 0;
  await new Promise((resolve) => socket.io.on("ping", () => { pings += 1; if (pings === 3) resolve(); }));
  out({ event: "pings", count: pings, connected: socket.connected });
  socket.disconnect();
}

(opts.scenario === "burst" ? burst() : full()).then(
  () => process.exit(0),
  (err) => { out({ event: "error", message: String(err && err.stack || err) }); process.exit(1); },
);
