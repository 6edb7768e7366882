// A Node socket.io-client that only listens (a dashboard): argv[2] is the URL. Prints
// {"connected": sid} once connected, then one JSON line per event received.
const { io } = require("socket.io-client");

const socket = io(process.argv[2], { reconnection: false, transports: ["websocket"] });
const say = (what) => process.stdout.write(JSON.stringify(what) + "\n");
socket.on("connect", () => say({ connected: socket.id }));
socket.onAny((name, data) => say({ event: name, data }));
