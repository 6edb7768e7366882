// A dashboard as a browser runs one: socket.io-client on "/" with its defaults (polling, then
// the WebSocket upgrade; reconnection on) unless argv[3], JSON options for io(), says otherwise
// (a test shortens the reconnection delays, or asks for WebSocket only). argv[2] is the URL.
// Prints a JSON line per connect, disconnect, connect_error and received event (its name and
// arguments, binary as {"hex": ...}), so a test can await them; runs until it is killed.
"use strict";
const { io } = require("socket.io-client");

const plain = (v) => {
  if (Buffer.isBuffer(v) || v instanceof ArrayBuffer) return { hex: Buffer.from(v).toString("hex") };
  if (Array.isArray(v)) return v.map(plain);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
};
const socket = io(process.argv[2], JSON.parse(process.argv[3] || "{}"));
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
socket.on("connect", () => out({ event: "connect", id: socket.id }));
socket.on("disconnect", (reason) => out({ event: "disconnect", reason }));
socket.on("connect_error", (err) => out({ event: "connect_error", message: err.message }));
socket.onAny((name, ...args) => out({ event: "received", name, args: plain(args) }));
