// A Node socket.io server for the reliability tests. Options come as one JSON argument:
// {port, pingInterval, pingTimeout, maxHttpBufferSize, delayMs, closeTimeoutMs}. Prints JSON
// lines on stdout: {"event":"listening","port":N}, then {"event":"connection"|"disconnect", ...}.
"use strict";
const { createServer } = require("http");
const { Server } = require("socket.io");
const { WebSocketServer } = require("ws");

const opts = JSON.parse(process.argv[2] || "{}");
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const httpServer = createServer();
const serverOptions = {
  pingInterval: opts.pingInterval ?? 25000,
  pingTimeout: opts.pingTimeout ?? 20000,
  maxHttpBufferSize: opts.maxHttpBufferSize ?? 1e8,
};
if (opts.closeTimeoutMs) {
  // ws waits 30 s for the peer's answer to a close frame before it drops the TCP connection;
  // a test of a vanished client shortens that wait instead of sitting through it
  serverOptions.wsEngine = class extends WebSocketServer {
    constructor(o) {
      super({ ...o, closeTimeout: opts.closeTimeoutMs });
    }
  };
}
const io = new Server(httpServer, serverOptions);
if (opts.delayMs) {
  // every Engine.IO request (handshake, polls, upgrade) waits before the server looks at it
  io.engine.use((req, res, next) => setTimeout(next, opts.delayMs));
}
io.on("connection", (socket) => {
  out({ event: "connection", id: socket.id, transport: socket.conn.transport.name });
  socket.on("echo", (...args) => {
    const ack = args.pop();
    ack(...args);
  });
  socket.on("bin", (buf, ack) => ack(Buffer.from(buf).length));
  socket.on("disconnect", (reason) => out({ event: "disconnect", id: socket.id, reason }));
});

httpServer.listen(opts.port ?? 0, "127.0.0.1", () => {
  out({ event: "listening", port: httpServer.address().port });
});
