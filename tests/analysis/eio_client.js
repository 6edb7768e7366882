// A plain engine.io-client: sends a text, a JSON text and a binary message and waits for the
// echoes; with "upgrade" it does so once on polling and again after the WebSocket upgrade.
// Options (JSON argument): url, transports, upgrade. Prints {"event":"done",...} and closes.
const { Socket } = require("engine.io-client");

const opts = JSON.parse(process.argv[2]);
const socket = new Socket(opts.url, { transports: opts.transports, upgrade: opts.upgrade });
const batch = ["hello", JSON.stringify({ t: 1, text: "not socket.io" }), Buffer.from([0, 1, 2, 255])];
const transports = [];
let waiting = 0;

function send() {
  transports.push(socket.transport.name);
  waiting += batch.length;
  for (const message of batch) socket.send(message);
}

socket.on("open", send);
socket.on("message", (data) => {
  if (data === "welcome") return;
  waiting -= 1;
  if (waiting > 0) return;
  if (opts.upgrade && transports.length === 1) {
    if (socket.transport.name === "websocket") send();
    else socket.once("upgrade", send);
    return;
  }
  process.stdout.write(JSON.stringify({ event: "done", transports }) + "\n");
  socket.close();
});
socket.on("error", (err) => {
  process.stdout.write(JSON.stringify({ event: "error", message: String(err) }) + "\n");
  process.exit(1);
});
