// A Node socket.io-client for the session-ending judge tests: argv[2] is the URL, argv[3] what
// it does; it prints one JSON line per step it reaches.
//   stay         connects (default transports) and stays
//   close_early  WebSocket only: sends CONNECT and closes 50 ms later, before any answer
//   close_probe  closes the session the moment its probe WebSocket opens
//   poll_forget  polling only: connects, emits "forget", then keeps polling
//   nsp:NAME[:TOKEN]  connects to namespace NAME (auth token TOKEN) and reports the answer
const { io } = require("socket.io-client");

const [url, mode] = process.argv.slice(2);
const say = (what) => process.stdout.write(JSON.stringify(what) + "\n");
const [kind, nsp, token] = mode.split(":");
const options = { reconnection: false, forceNew: true };
if (kind === "close_early") options.transports = ["websocket"];
if (kind === "poll_forget") options.transports = ["polling"];
if (token !== undefined) options.auth = { token };
const socket = io(url + (kind === "nsp" ? nsp : ""), options);
const manager = socket.io;

socket.on("connect", () => {
  say({ connected: socket.id });
  if (kind === "poll_forget") socket.emit("forget");
});
socket.on("connect_error", (err) => say({ connect_error: err.message }));
socket.on("disconnect", (reason) => say({ disconnect: reason }));
socket.on("forgotten", () => say({ forgotten: true }));
manager.on("open", () => {
  const engine = manager.engine;
  if (kind === "close_early") setTimeout(() => engine.close(), 50);
  if (kind === "close_probe") {
    // The probe starts right after "open": close everything as soon as its WebSocket opens.
    const create = engine.createTransport.bind(engine);
    engine.createTransport = (name) => {
      const transport = create(name);
      if (name === "websocket") transport.once("open", () => engine.close());
      return transport;
    };
  }
  engine.on("close", (reason) => say({ closed: reason }));
});
