// A dashboard as claude-mpm's page connects: socket.io-client with its defaults (polling, then
// the WebSocket upgrade; reconnection on). Arguments: the URL, and optionally JSON options for
// io() (a test shortens the reconnection delays). Prints a JSON line per
// connect, disconnect, connect_error and received event, so a test can await them.
"use strict";
const { io } = require("socket.io-client");

const socket = io(process.argv[2], JSON.parse(process.argv[3] || "{}"));
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
socket.on("connect", () => out({ event: "connect", id: socket.id }));
socket.on("disconnect", (reason) => out({ event: "disconnect", reason }));
socket.on("connect_error", (err) => out({ event: "connect_error", message: err.message }));
socket.onAny((name) => out({ event: "received", name }));
