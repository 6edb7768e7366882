// A Node socket.io server for the dashboard page tests, shaped like the seed's old layout.
// Options as one JSON argument: {namespaces, pingInterval, pingTimeout}. Namespaces not listed
// are unknown to the server, so socket.io refuses them with "Invalid namespace".
// POST /api/events relays the hook body's `data` to every client on "/" as `claude_event`;
// POST /drop cuts every client's transport (a network drop). Prints {"event":"listening","port"}.
"use strict";
const { createServer } = require("http");
const { Server } = require("socket.io");

const opts = JSON.parse(process.argv[2] || "{}");
const namespaces = opts.namespaces || ["/", "/hook", "/system"];
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const httpServer = createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    if (req.method === "POST" && req.url === "/api/events") {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch (err) {
        res.writeHead(500).end(`Error: ${err.message}`);
        return;
      }
      io.of("/").emit("claude_event", body.data);
      res.writeHead(204).end();
    } else if (req.method === "POST" && req.url === "/drop") {
      for (const client of Object.values(io.engine.clients)) client.close();
      res.writeHead(204).end();
    } else {
      res.writeHead(404).end("not found");
    }
  });
});

const io = new Server(httpServer, {
  cors: { origin: "*" },
  pingInterval: opts.pingInterval ?? 25000,
  pingTimeout: opts.pingTimeout ?? 20000,
});

for (const name of namespaces) {
  const nsp = io.of(name);
  nsp.on("connection", (socket) => {
    socket.emit("welcome", { nsp: name, auth: socket.handshake.auth, bin: Buffer.from([1, 2, 3]) });
    socket.on("sio-sniffer:ping", (payload, ack) => ack({ pong: true, nsp: name }));
    // reversed bytes back, in an ack and in an event, to test binary both ways
    socket.on("reverse", (buf, ack) => {
      const reversed = Buffer.from(buf).reverse();
      socket.emit("reversed", { data: reversed });
      ack(reversed);
    });
    // the server asks the client for an ack and reports the answer
    socket.on("ask", (question) => {
      socket.emit("question", question, (answer) => socket.emit("answer_was", answer));
    });
    if (name === "/hook") {
      socket.on("claude_event", (data) => io.of("/").emit("claude_event", data));
    }
  });
}

httpServer.listen(0, "127.0.0.1", () => {
  out({ event: "listening", port: httpServer.address().port });
});
