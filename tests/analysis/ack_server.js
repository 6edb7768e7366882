// A Node socket.io server whose "save" handler acknowledges (healthy) or never calls the ack
// callback ("broken"). Prints its port on stdout once listening on 127.0.0.1.
const http = require("http");
const { Server } = require("socket.io");

const broken = process.argv[2] === "broken";
const httpServer = http.createServer();
const io = new Server(httpServer);
io.on("connection", (socket) => {
  socket.on("save", (data, ack) => {
    if (!broken) ack({ ok: true, saved: data });
  });
});
httpServer.listen(0, "127.0.0.1", () => {
  process.stdout.write(`${httpServer.address().port}\n`);
});
