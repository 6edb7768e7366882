// The benchmark's Node socket.io server: every "hook" event is relayed to the "dashboards" room.
// Options come as one JSON argument: {pingInterval, pingTimeout}. Prints one JSON line,
// {"event":"listening","port":N,"version":"4.x.y"}, then runs until killed.
"use strict";
const { createServer } = require("http");
const { Server } = require("socket.io");

const opts = JSON.parse(process.argv[2] || "{}");
const httpServer = createServer();
// The defaults users run with (HTTP compression on, no per-message deflate), except the buffer
// size, so that a large burst posted over polling is not refused.
const io = new Server(httpServer, {
  pingInterval: opts.pingInterval ?? 25000,
  pingTimeout: opts.pingTimeout ?? 20000,
  maxHttpBufferSize: 1e8,
});

// Joining in a middleware puts a dashboard in the room before its CONNECT answer leaves, so an
// event emitted after the client saw "connect" always reaches it.
io.use((socket, next) => {
  if ((socket.handshake.auth || {}).role === "dashboard") socket.join("dashboards");
  next();
});
io.on("connection", (socket) => {
  socket.on("hook", (data) => io.to("dashboards").emit("event", data));
});

httpServer.listen(0, "127.0.0.1", () => {
  const version = require("socket.io/package.json").version;
  process.stdout.write(JSON.stringify({ event: "listening", port: httpServer.address().port, version }) + "\n");
});
