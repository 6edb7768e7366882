// A Node socket.io server for the relay tests. Options come as one JSON argument:
// {pingInterval, pingTimeout, perMessageDeflate, msgpack}. Prints JSON lines on stdout:
// {"event":"listening","port":N} once, then {"event":"disconnect","nsp","reason"} per socket.
"use strict";
const { createServer } = require("http");
const { Server } = require("socket.io");

const opts = JSON.parse(process.argv[2] || "{}");
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const httpServer = createServer();
const io = new Server(httpServer, {
  pingInterval: opts.pingInterval ?? 25000,
  pingTimeout: opts.pingTimeout ?? 20000,
  perMessageDeflate: opts.perMessageDeflate ?? false,
  parser: opts.msgpack ? require("socket.io-msgpack-parser") : undefined,
  maxHttpBufferSize: 1e8,
});

function setup(nsp) {
  nsp.use((socket, next) => {
    const auth = socket.handshake.auth || {};
    if (auth.token === "bad") next(new Error("bad token"));
    else next();
  });
  nsp.on("connection", (socket) => {
    socket.emit("welcome", { nsp: nsp.name, auth: socket.handshake.auth });
    socket.on("echo", (...args) => {
      const ack = args.pop();
      ack({ echo: args });
    });
    socket.on("bin", (buf, ack) => {
      const data = Buffer.from(buf);
      socket.emit("bin_back", Buffer.from(data).reverse(), { nested: [data] });
      ack(`got ${data.length}`);
    });
    socket.on("ask", (question) => {
      socket.emit("question", question, (answer) => socket.emit("answer_was", answer));
    });
    // all n events in one go, or `batch` events every `everyMs` ms (0: as soon as timers, such
    // as the heartbeat's, have had their turn)
    socket.on("burst", (n, pace) => {
      const batch = pace ? pace.batch : n;
      let i = 0;
      const next = () => {
        for (const end = Math.min(n, i + batch); i < end; i++) socket.emit("tick", i);
        if (i >= n) socket.emit("burst_done", n);
        else if (pace.everyMs) setTimeout(next, pace.everyMs);
        else setImmediate(next);
      };
      next();
    });
    socket.on("disconnect", (reason) => out({ event: "disconnect", nsp: nsp.name, reason }));
  });
}
setup(io.of("/"));
setup(io.of("/admin"));

httpServer.listen(0, "127.0.0.1", () => {
  out({ event: "listening", port: httpServer.address().port });
});
