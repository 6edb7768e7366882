// A socket.io-client that joins a namespace late: "/" first, two pings (acked), then "/late" on
// the same connection. Prints "done N" with the server's pings_before. The URL is argv[2].
"use strict";
const { io } = require("socket.io-client");

const s = io(process.argv[2], { transports: ["websocket"], reconnection: false });
s.on("connect_error", (e) => { console.log("error " + e.message); process.exit(2); });
s.once("hello", async () => {
  for (const n of [0, 1]) await s.emitWithAck("ping_me", { n });
  const late = s.io.socket("/late");
  late.on("welcome_late", (w) => {
    console.log("done " + w.pings_before);
    s.io.engine.close();
  });
});
