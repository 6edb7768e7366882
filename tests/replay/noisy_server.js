// A Node socket.io server whose payloads carry noise under arbitrary key names (a float of epoch
// seconds, epoch milliseconds, an ISO-8601 time, a UUID, a random token, a counter), and that can
// be changed in one way at a time: POST /mode?change=NAME (none, renamed, dropped, value,
// missing, extra; "counting": hello carries how many connections the server has seen, a value
// that differs between two replays and fits no rule of noise by nature). A client joining /late is
// told how many pings its Engine.IO session sent before (welcome_late): the server behaves
// differently on a late join. The twin of noisy_server.py; prints its port on stdout once it listens.
"use strict";
const http = require("http");
const crypto = require("crypto");
const { Server } = require("socket.io");

const CHANGES = ["none", "renamed", "dropped", "value", "missing", "extra", "counting"];
let change = "none";
let seq = 0;
let visits = 0;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (req.method === "POST" && url.pathname === "/mode") {
    const wanted = url.searchParams.get("change") || "";
    if (!CHANGES.includes(wanted)) {
      res.writeHead(400);
      res.end("change must be one of " + CHANGES.join(", "));
      return;
    }
    change = wanted;
    res.end(change);
  }
});
const io = new Server(server, { pingInterval: 1000, pingTimeout: 1000 });
function setup(socket) {
  const nsp = socket.nsp.name;
  const hello = { sessionKey: "k-" + socket.id, nonce: crypto.randomBytes(8).toString("hex"), nsp };
  if (change === "counting") hello.visits = ++visits;
  if (change !== "missing") socket.emit("hello", hello);
  if (change === "extra") socket.emit("motd", { text: "maintenance at noon" });
  // socket.client is the Engine.IO session, shared by the client's namespaces.
  if (nsp === "/late") socket.emit("welcome_late", { pings_before: socket.client.pings || 0 });
  socket.on("ping_me", (data, ack) => {
    socket.client.pings = (socket.client.pings || 0) + 1;
    const now = Date.now();
    const body = { n: data.n, status: change === "value" ? "degraded" : "ok",
                   relayed_at: now / 1000, sentAtMs: now, traceRef: crypto.randomUUID(), seq: ++seq };
    if (change === "dropped") delete body.status;
    socket.emit(change === "renamed" ? "pong_reply" : "pong_back", body);
    ack({ ok: true, servedAt: new Date().toISOString() });
  });
}
// "/" exists from the start, so a dynamic namespace would not cover it: both are set up.
io.on("connection", setup);
io.of(/^\/\w+$/).on("connection", setup);
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
