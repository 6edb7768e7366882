// A Node socket.io-client carrying secrets, for the secrets matrix. One JSON argument:
// {url, transports, extraHeaders, query, auth, marker}. Connects (polling, then the upgrade),
// emits "done" with the marker and waits for its ack, prints {"event":"done"} and exits.
"use strict";
const { io } = require("socket.io-client");

const opts = JSON.parse(process.argv[2]);
const socket = io(opts.url, {
  transports: opts.transports,
  reconnection: false,
  extraHeaders: opts.extraHeaders,
  query: opts.query,
  auth: opts.auth,
});
socket.on("connect_error", (err) => {
  process.stdout.write(JSON.stringify({ event: "error", message: err.message }) + "\n");
  process.exit(1);
});
socket.on("connect", () => {
  // Wait for the upgrade, so the WebSocket request carries the headers too.
  const finish = async () => {
    await socket.emitWithAck("done", opts.marker);
    process.stdout.write(JSON.stringify({ event: "done" }) + "\n");
    socket.disconnect();
    process.exit(0);
  };
  if (socket.io.engine.transport.name === "websocket") finish();
  else socket.io.engine.once("upgrade", finish);
});
