// A socket.io-client for the Admin UI bridge tests. One JSON argument: {url, nsp, auth,
// pollingOnly}. Connects on polling and (unless pollingOnly) upgrades to WebSocket only once
// the namespace is connected, then prints JSON lines: {"event":"connected","sid","eioSid"}, {"event":"upgraded"}, and
// {"event":"hi","data"} after one "hello" -> "hi" round trip. Disconnects when stdin closes.
"use strict";
const { io } = require("socket.io-client");

const opts = JSON.parse(process.argv[2]);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const socket = io(opts.url + opts.nsp, {
  transports: ["polling", "websocket"],
  // The automatic upgrade races the namespace CONNECT; the test needs connect-then-upgrade.
  upgrade: false,
  reconnection: false,
  auth: opts.auth,
});
const engine = () => socket.io.engine;

socket.on("connect", () => {
  out({ event: "connected", sid: socket.id, eioSid: engine().id, transport: engine().transport.name });
  const upgraded = () => {
    out({ event: "upgraded" });
    socket.emit("hello", "node");
  };
  if (opts.pollingOnly) return;
  engine().once("upgrade", upgraded);
  // engine.io-client 6.x's own probe-and-upgrade step (private API), run when we choose.
  engine()._probe("websocket");
});
socket.on("hi", (data) => out({ event: "hi", data }));
socket.on("connect_error", (err) => out({ event: "connect_error", message: err.message }));
socket.on("disconnect", (reason) => out({ event: "disconnect", reason }));

process.stdin.resume();
process.stdin.on("end", () => {
  socket.disconnect();
  process.exit(0);
});
