// A Node socket.io server answering "fetch" with a "result" carrying the same payload.
// "retry" (healthy): every attempt is answered, the ack of an attempt held until the next one
// arrives, so a client with `retries` / `timeout().emitWithAck()` resends and gets "result"
// once per attempt. "twice" (broken): the handler is registered twice, so one "fetch" gets two
// identical "result"s. Short heartbeats let a test see time pass. Prints its port once listening.
const http = require("http");
const { Server } = require("socket.io");

const mode = process.argv[2];
const httpServer = http.createServer();
const io = new Server(httpServer, { pingInterval: 300, pingTimeout: 1000 });
io.on("connection", (socket) => {
  if (mode === "twice") {
    const handler = (data, ack) => {
      socket.emit("result", data);
      ack({ ok: true });
    };
    socket.on("fetch", handler);
    socket.on("fetch", handler);
    return;
  }
  let held = null;
  socket.on("fetch", (data, ack) => {
    socket.emit("result", data);
    if (held === null) {
      held = ack; // slow first answer: the client's ackTimeout passes and it retries
      return;
    }
    held({ ok: true, late: true });
    ack({ ok: true });
  });
});
httpServer.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${httpServer.address().port}\n`);
});
