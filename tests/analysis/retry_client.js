// A socket.io-client emitting one "fetch" with an ack, retried the way apps retry: the
// `retries` option ("retries") or a loop over `timeout(ms).emitWithAck` ("timeout").
// Options (JSON argument): url, transports, how, results (how many "result"s to wait for).
// Prints {"event":"done","results":N,"ack":...} once acked and the results arrived; stays
// connected (heartbeats flowing) until its stdin ends, then closes.
const { io } = require("socket.io-client");

const opts = JSON.parse(process.argv[2]);
const ACK_TIMEOUT = 150;
const socket = io(opts.url, {
  transports: opts.transports,
  reconnection: false,
  retries: opts.how === "retries" ? 3 : 0,
  ackTimeout: ACK_TIMEOUT,
});
const payload = { q: "weather", city: "Oslo" };
let results = 0;
let ack = null;
let done = false;

function finish() {
  if (done || ack === null || results < opts.results) return;
  done = true;
  process.stdout.write(JSON.stringify({ event: "done", results, ack }) + "\n");
}

process.stdin.on("end", () => socket.close());
process.stdin.resume();

socket.on("result", () => {
  results += 1;
  finish();
});
socket.on("connect_error", (err) => {
  process.stdout.write(JSON.stringify({ event: "error", message: String(err) }) + "\n");
  process.exit(1);
});
socket.once("connect", async () => {
  if (opts.how === "retries") {
    socket.emit("fetch", payload, (err, answer) => {
      ack = err ? { error: String(err) } : answer;
      finish();
    });
    return;
  }
  for (let attempt = 0; attempt < 3 && ack === null; attempt++) {
    try {
      ack = await socket.timeout(ACK_TIMEOUT).emitWithAck("fetch", payload);
    } catch (err) {
      // timed out: try again, as the socket.io docs suggest
    }
  }
  finish();
});
