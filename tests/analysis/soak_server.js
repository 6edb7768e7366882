// The healthy-traffic soak's server: one HTTP server holding a Node socket.io server and, on
// /engine.io/, a plain engine.io server (no Socket.IO on top). Prints its port once listening.
//   /        joins the rooms a client asks for; "echo" back to the sender, "ask" answered by
//            ack, "shout" broadcast to a room, "fetch" (the retry twin of retry_server.js: the
//            first attempt's ack held until the retry arrives), "kick" closes the transport
//            from the server side, "arm" makes the socket's next disconnect emit two "missed"
//            events to its room (replayed to it on its recovered reconnect)
//   /admin   middleware refuses every client whose auth token is not "good": deliberately
//   engine.io greets each client, then echoes every message back
// Heartbeats every 200 ms, so the test has records stamped past its deadlines.
const http = require("http");
const { Server } = require("socket.io");
const engine = require("engine.io");

const httpServer = http.createServer();
const io = new Server(httpServer, {
  pingInterval: 200,
  pingTimeout: 1000,
  destroyUpgrade: false,
  connectionStateRecovery: { maxDisconnectionDuration: 5000, skipMiddlewares: true },
});
io.on("connection", (socket) => {
  let held = null;
  socket.on("join", (room, ack) => {
    socket.join(room);
    ack({ joined: room });
  });
  socket.on("echo", (data) => socket.emit("echo", data));
  socket.on("ask", (question, ack) => ack({ answer: question.n * 2 }));
  socket.on("shout", (room, data) => io.to(room).emit("news", data));
  socket.on("fetch", (data, ack) => {
    socket.emit("result", data);
    if (held === null) {
      held = ack; // slower than the client's ackTimeout: it retries
      return;
    }
    held({ ok: true, late: true });
    ack({ ok: true });
  });
  socket.on("kick", () => socket.conn.close());
  socket.on("arm", (room, ack) => {
    socket.once("disconnect", () => {
      io.to(room).emit("missed", 1);
      io.to(room).emit("missed", 2);
    });
    ack({ armed: room });
  });
});
io.of("/admin").use((socket, next) => {
  next(socket.handshake.auth.token === "good" ? undefined : new Error("not authorized"));
});
io.of("/admin").on("connection", (socket) => {
  socket.on("ask", (question, ack) => ack({ admin: question.n }));
});

// Both attach to the one HTTP server; destroyUpgrade off so that neither kills the other's
// WebSocket upgrades.
const plain = engine.attach(httpServer, {
  path: "/engine.io/", pingInterval: 200, pingTimeout: 1000, destroyUpgrade: false,
});
plain.on("connection", (socket) => {
  socket.send("welcome");
  socket.on("message", (data) => socket.send(data));
});
httpServer.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${httpServer.address().port}\n`);
});
