// A Node socket.io server for the HAR test: serves a page that loads the client bundle from
// /socket.io/socket.io.js, checks auth, acks "echo" and answers with "echoed".
// Prints its port on stdout once listening.
const http = require("http");
const { Server } = require("socket.io");

const PAGE = `<!doctype html><html><body><pre id="log"></pre>
<script src="/socket.io/socket.io.js"></script>
<script>
const log = (m) => { document.getElementById("log").textContent += m + "\\n"; };
const t = new URLSearchParams(location.search).get("t") || "polling,websocket";
const s = io({ auth: { token: "tok-123" }, transports: t.split(",") });
s.on("welcome", () => {
  s.emit("echo", "from-browser", (ack) => {
    log("ack " + JSON.stringify(ack));
    s.emit("bin", new Uint8Array([1, 2, 3]));
  });
});
s.on("bin_back", (b) => { log("bin " + new Uint8Array(b).join(",")); s.disconnect(); log("done"); });
</script></body></html>`;

const server = http.createServer((req, res) => {
  if (req.url.startsWith("/?") || req.url === "/") {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(PAGE);
  }
});
const io = new Server(server);
io.use((socket, next) => {
  if (socket.handshake.auth.token === "tok-123") next();
  else next(new Error("bad token"));
});
io.on("connection", (socket) => {
  socket.emit("welcome", { id: socket.id });
  socket.on("echo", (arg, ack) => {
    socket.emit("echoed", { args: [arg] });
    ack({ ok: true });
  });
  socket.on("bin", (b) => socket.emit("bin_back", Buffer.from(b).reverse()));
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
