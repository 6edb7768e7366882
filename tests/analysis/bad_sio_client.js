// A socket.io-client that connects, then writes one malformed Socket.IO packet (an EVENT whose
// JSON never ends) straight onto its Engine.IO socket. The server drops the connection on the
// parse error; prints {"event":"done"} once disconnected.
// Options (JSON argument): url, transports.
const { io } = require("socket.io-client");

const opts = JSON.parse(process.argv[2]);
const socket = io(opts.url, { transports: opts.transports, reconnection: false });
socket.once("connect", () => socket.io.engine.send('2["fetch",{"q":'));
socket.once("disconnect", (reason) => {
  process.stdout.write(JSON.stringify({ event: "done", reason }) + "\n");
  socket.close();
});
