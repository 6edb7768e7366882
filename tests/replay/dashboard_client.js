// A dashboard as a browser runs one: socket.io-client on "/", polling then WebSocket, listening
// to every event. Prints each event as a JSON line {"event", "args"} as it arrives (binary as
// {"hex": ...}); runs until it is killed. The URL is argv[2].
"use strict";
const { io } = require("socket.io-client");

const plain = (v) => {
  if (Buffer.isBuffer(v) || v instanceof ArrayBuffer) return { hex: Buffer.from(v).toString("hex") };
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
};
const s = io(process.argv[2], { reconnection: false });
s.onAny((event, ...args) => {
  process.stdout.write(JSON.stringify({ event, args: plain(args) }) + "\n");
});
s.on("connect_error", (e) => { console.log(JSON.stringify({ error: e.message })); process.exit(2); });
