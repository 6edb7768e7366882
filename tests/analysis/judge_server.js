// A Node socket.io server for the session-ending judge tests; argv[2] picks how it behaves:
//   healthy   plain server
//   slow      a middleware that blocks the loop 300 ms before accepting: its CONNECT answer
//             leaves after a client that closed meanwhile sent its close frame
//   silent    a middleware that never calls next(): CONNECT is never answered
//   no_probe  never answers the upgrade probe: the client stays on polling
//   forget    on "forget", drops the client's session without closing it (as a restart does)
//   auth      "/admin" refuses clients whose auth token is not "good" ("Auth failed")
// Heartbeats every 300 ms so the tests have records stamped after their deadlines.
// Prints its port on stdout once listening on 127.0.0.1.
const http = require("http");
const { Server } = require("socket.io");
const { Socket } = require("engine.io");

const mode = process.argv[2];
if (mode === "no_probe") {
  Socket.prototype._maybeUpgrade = function () {};
}
const httpServer = http.createServer();
const io = new Server(httpServer, { pingInterval: 300, pingTimeout: 1000 });
if (mode === "slow") {
  io.use((socket, next) => {
    const until = Date.now() + 300;
    while (Date.now() < until);
    next();
  });
}
if (mode === "silent") {
  io.use(() => {});
}
io.on("connection", (socket) => {
  socket.on("forget", () => {
    delete io.engine.clients[socket.conn.id];
    io.engine.clientsCount--;
    socket.emit("forgotten");
  });
});
io.of("/admin").use((socket, next) => {
  next(socket.handshake.auth.token === "good" ? undefined : new Error("Auth failed"));
});
httpServer.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${httpServer.address().port}\n`);
});
