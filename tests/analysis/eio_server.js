// A plain Node engine.io server (no Socket.IO on top) on the default path /engine.io/: it
// greets each client with a text message, then echoes every message (text or binary) back.
// Prints its port on stdout once listening on 127.0.0.1.
const http = require("http");
const engine = require("engine.io");

const httpServer = http.createServer();
const server = engine.attach(httpServer, { pingInterval: 300, pingTimeout: 1000 });
server.on("connection", (socket) => {
  socket.send("welcome");
  socket.on("message", (data) => socket.send(data));
});
httpServer.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${httpServer.address().port}\n`);
});
