// A Node socket.io-client for the sniffer's log tests. One JSON argument:
// {url, transports, msgpack}. Emits "echo" with an ack and "bin" with a buffer, prints
// {"event":"done","echo":..., "bin":...} and exits.
"use strict";
const { io } = require("socket.io-client");

const opts = JSON.parse(process.argv[2]);
const socket = io(opts.url, {
  transports: opts.transports,
  reconnection: false,
  parser: opts.msgpack ? require("socket.io-msgpack-parser") : undefined,
  auth: { token: "node-secret" },
});
socket.on("connect_error", (err) => {
  process.stdout.write(JSON.stringify({ event: "error", message: err.message }) + "\n");
  process.exit(1);
});
socket.on("connect", async () => {
  const echo = await socket.emitWithAck("echo", "hi", { n: 1 });
  const back = new Promise((resolve) => socket.once("bin_back", (buf) => resolve(buf)));
  const ack = await socket.emitWithAck("bin", Buffer.from([1, 2, 3, 250]));
  const buf = await back;
  process.stdout.write(JSON.stringify({ event: "done", echo, ack, bin: Buffer.from(buf).toString("hex") }) + "\n");
  socket.disconnect();
  process.exit(0);
});
