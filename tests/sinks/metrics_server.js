// A Node socket.io server for the metrics tests. "relay" goes to every other client as
// "relayed"; "echo" is acked with its argument; POST /api/events answers 204 and emits
// "hook_event" to everyone, unless the body has "drop": true (a server that loses it).
// Prints its port on stdout once listening on 127.0.0.1.
const http = require("http");
const { Server } = require("socket.io");

const httpServer = http.createServer();
const io = new Server(httpServer, { pingInterval: 1000, pingTimeout: 1000 });
httpServer.prependListener("request", (req, res) => {
  if (req.url !== "/api/events") return;
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const event = JSON.parse(body);
    res.writeHead(204).end();
    if (!event.drop) io.emit("hook_event", event);
  });
});
io.on("connection", (socket) => {
  socket.on("relay", (data) => socket.broadcast.emit("relayed", data));
  socket.on("echo", (data, ack) => ack(data));
});
httpServer.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${httpServer.address().port}\n`);
});
