// A Node socket.io node of the cluster tests, sharing a real Redis through
// @socket.io/redis-adapter (node-redis clients). argv: REDIS_URL DROP_EVERY [MODE [csr]];
// MODE "sharded": createShardedAdapter (SPUBLISH/SSUBSCRIBE, Redis >= 7) instead of
// createAdapter; "streams": @socket.io/redis-streams-adapter's createAdapter (XADD/XREAD on the
// stream "socket.io"); "memory": no adapter (a single server). "csr" turns on
// connectionStateRecovery: each broadcast then ends with the adapter's offset.
//   GET /health       answered "ok" (a test moves the sniffer's clock with it)
//   POST /api/events  the JSON body is broadcast as "claude_event" to room "dashboards"
//   "chat"            relayed to room "dashboards" but the sender
//   "join"            enters room "dashboards" (answered with true)
// With DROP_EVERY n > 0, every n-th POST and every n-th chat is skipped (the node's handler
// drops it). Prints its port on stdout once listening on 127.0.0.1 with the adapter subscribed.
const http = require("http");
const { Server } = require("socket.io");
const { createAdapter, createShardedAdapter } = require("@socket.io/redis-adapter");
const { createAdapter: createStreamsAdapter } = require("@socket.io/redis-streams-adapter");
const { createClient } = require("redis");

const [url, dropArg, mode, csr] = process.argv.slice(2);
const dropEvery = Number(dropArg || 0);
const ROOM = "dashboards";
const seen = { hook: 0, chat: 0 };
const drops = (kind) => dropEvery > 0 && ++seen[kind] % dropEvery === 0;

async function main() {
  const pub = createClient({ url });
  const sub = pub.duplicate();
  // Redis going away under the test is expected: the clients reconnect on their own.
  pub.on("error", () => {});
  sub.on("error", () => {});
  await Promise.all([pub.connect(), sub.connect()]);
  const httpServer = http.createServer((req, res) => {
    if (req.method === "GET" && req.url === "/health") return res.end("ok");
    if (req.method !== "POST" || req.url !== "/api/events") return;
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      if (!drops("hook")) io.to(ROOM).emit("claude_event", JSON.parse(body));
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end('{"ok":true}');
    });
  });
  const adapters = {
    sharded: () => createShardedAdapter(pub, sub),
    streams: () => createStreamsAdapter(pub),
    memory: () => undefined,
  };
  const adapter = (adapters[mode] || (() => createAdapter(pub, sub)))();
  const options = { pingInterval: 1000 };
  if (adapter) options.adapter = adapter;
  if (csr === "csr") options.connectionStateRecovery = { maxDisconnectionDuration: 60000 };
  const io = new Server(httpServer, options);
  io.on("connection", (socket) => {
    socket.on("join", (ack) => {
      socket.join(ROOM);
      ack(true);
    });
    socket.on("chat", (data) => {
      if (!drops("chat")) socket.to(ROOM).emit("chat", data);
    });
  });
  httpServer.listen(0, "127.0.0.1", () => console.log(httpServer.address().port));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
