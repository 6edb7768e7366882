// Protocol vectors from the real Node parsers, for the Python codec's tests.
//
//   node tests/node/vectors.js encode          -> JSON: packets and how Node encodes them
//   node tests/node/vectors.js decode < in.json -> JSON: how Node decodes the given messages
//   EIO_PARSER_V2=<dir of engine.io-parser@2> node tests/node/vectors.js encode-v3
//                                              -> JSON: Engine.IO v3 vectors (protocol 3)
//
// Bytes travel through JSON as {"$bin": "<hex>"}; an encoded message is {"text": "..."} or
// {"bin": "<hex>"}.
"use strict";

const path = require("path");
const here = path.join(__dirname, "node_modules");
const sioParser = require(path.join(here, "socket.io-parser"));
const msgpackParser = require(path.join(here, "socket.io-msgpack-parser"));
const eioParser = require(path.join(here, "engine.io-parser"));

const EIO_TYPES = ["open", "close", "ping", "pong", "message", "upgrade", "noop"];
const B = (bytes) => Buffer.from(bytes);

function toJson(value) {
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) {
    return { $bin: Buffer.from(value).toString("hex") };
  }
  if (value instanceof ArrayBuffer) return { $bin: Buffer.from(value).toString("hex") };
  if (Array.isArray(value)) return value.map(toJson);
  if (value && typeof value === "object") {
    const out = {};
    for (const key of Object.keys(value)) {
      if (value[key] !== undefined) out[key] = toJson(value[key]);
    }
    return out;
  }
  return value;
}

function fromJson(value) {
  if (Array.isArray(value)) return value.map(fromJson);
  if (value && typeof value === "object") {
    if (typeof value.$bin === "string") return Buffer.from(value.$bin, "hex");
    const out = {};
    for (const key of Object.keys(value)) out[key] = fromJson(value[key]);
    return out;
  }
  return value;
}

const message = (m) => (typeof m === "string" ? { text: m } : { bin: Buffer.from(m).toString("hex") });
const unmessage = (m) => (m.text !== undefined ? m.text : Buffer.from(m.bin, "hex"));

const SIO_CASES = [
  { type: 0, nsp: "/" },
  { type: 0, nsp: "/", data: { sid: "oSO0OpakmZnP0Wb8AAAB" } },
  { type: 0, nsp: "/admin", data: { token: "s3cr3t" } },
  { type: 0, nsp: "/admin", data: { pid: "p1", offset: "MzUPkW0" } },
  { type: 1, nsp: "/admin" },
  { type: 1, nsp: "/" },
  { type: 2, nsp: "/", data: ["chat", { text: "hi" }] },
  { type: 2, nsp: "/", data: ["chat", "é€😀\u2028"], id: 12 },
  { type: 2, nsp: "/admin", data: ["x", 1, null, true, [1, 2], { a: { b: [] } }], id: 0 },
  { type: 2, nsp: "/", data: ["big", 9007199254740991, -1.5e300, 0.1, -0] },
  { type: 2, nsp: "/", data: ["s", '{"_placeholder":true,"num":0}', "a,b", "/ns,"] },
  { type: 3, nsp: "/", data: ["ok"], id: 12 },
  { type: 3, nsp: "/admin", data: [], id: 7 },
  { type: 4, nsp: "/", data: { message: "Not authorized", data: { code: 401 } } },
  { type: 4, nsp: "/x", data: "Unable to connect" },
  { type: 2, nsp: "/", data: ["bin", B([1, 2, 3]), { nested: [B([]), { deep: B([255]) }] }] },
  { type: 2, nsp: "/admin", data: ["up", B([0, 1, 2])], id: 5 },
  { type: 3, nsp: "/admin", data: [B([0, 1, 2]), "x", B([9])], id: 3 },
];

const MSGPACK_CASES = [
  { type: 0, nsp: "/" },
  { type: 0, nsp: "/", data: { sid: "oSO0OpakmZnP0Wb8AAAB" } },
  { type: 0, nsp: "/admin", data: { token: "s3cr3t" } },
  { type: 1, nsp: "/admin" },
  { type: 2, nsp: "/", data: ["chat", { text: "hi", n: 1.5, big: 4294967296 }] },
  { type: 2, nsp: "/admin", data: ["up", B([0, 1, 2]), { deep: [B([255])] }], id: 42 },
  { type: 3, nsp: "/", data: ["ok", null], id: 12 },
  { type: 4, nsp: "/", data: { message: "Not authorized" } },
  { type: 4, nsp: "/x", data: "Unable to connect" },
];

const EIO_PACKETS = [
  { type: "open", data: '{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}' },
  { type: "close" },
  { type: "ping" },
  { type: "ping", data: "probe" },
  { type: "pong", data: "probe" },
  { type: "message", data: "hello é€😀" },
  { type: "message", data: '2["chat","hi"]' },
  { type: "message", data: B([1, 2, 3, 4]) },
  { type: "message", data: B([]) },
  { type: "upgrade" },
  { type: "noop" },
];

function encodeEio(packet, supportsBinary) {
  let out;
  eioParser.encodePacket(packet, supportsBinary, (encoded) => { out = encoded; });
  return out;
}

function encodeAll() {
  const vectors = [];
  const encoder = new sioParser.Encoder();
  for (const packet of SIO_CASES) {
    vectors.push({ layer: "sio", parser: "default", packet: toJson(packet),
      encoded: encoder.encode(packet).map(message) });
  }
  const mpEncoder = new msgpackParser.Encoder();
  for (const packet of MSGPACK_CASES) {
    vectors.push({ layer: "sio", parser: "msgpack", packet: toJson(packet),
      encoded: mpEncoder.encode(packet).map(message) });
  }
  for (const packet of EIO_PACKETS) {
    for (const supportsBinary of [true, false]) {
      vectors.push({ layer: "eio", eio: 4, supports_binary: supportsBinary,
        packet: toJson({ type: EIO_TYPES.indexOf(packet.type), data: packet.data }),
        encoded: message(encodeEio(packet, supportsBinary)) });
    }
  }
  const payloads = [EIO_PACKETS, EIO_PACKETS.slice(5, 8), [EIO_PACKETS[6]]];
  for (const packets of payloads) {
    let out;
    eioParser.encodePayload(packets, (encoded) => { out = encoded; });
    vectors.push({ layer: "payload", eio: 4,
      packets: packets.map((p) => toJson({ type: EIO_TYPES.indexOf(p.type), data: p.data })),
      encoded: message(out) });
  }
  return vectors;
}

function encodeV3() {
  const v2 = require(process.env.EIO_PARSER_V2);
  const vectors = [];
  const packets = EIO_PACKETS.map((p) => ({ type: p.type, data: p.data }));
  for (const packet of packets) {
    for (const supportsBinary of [true, false]) {
      let out;
      v2.encodePacket(packet, supportsBinary, false, (encoded) => { out = encoded; });
      vectors.push({ layer: "eio", eio: 3, supports_binary: supportsBinary,
        packet: toJson({ type: EIO_TYPES.indexOf(packet.type), data: packet.data }),
        encoded: message(out) });
    }
  }
  const texts = packets.filter((p) => !Buffer.isBuffer(p.data));
  const payloads = [packets, texts, packets.slice(5, 8), [packets[5]], []];
  for (const list of payloads) {
    for (const supportsBinary of [true, false]) {
      let out;
      v2.encodePayload(list, supportsBinary, (encoded) => { out = encoded; });
      vectors.push({ layer: "payload", eio: 3, supports_binary: supportsBinary,
        packets: list.map((p) => toJson({ type: EIO_TYPES.indexOf(p.type), data: p.data })),
        encoded: message(out) });
    }
  }
  return vectors;
}

function decodeSio(parser, messages) {
  const decoder = parser === "msgpack" ? new msgpackParser.Decoder() : new sioParser.Decoder();
  const packets = [];
  decoder.on("decoded", (packet) => packets.push(toJson(packet)));
  try {
    for (const m of messages) decoder.add(unmessage(m));
  } catch (err) {
    return { packets, error: String(err.message || err) };
  }
  return { packets };
}

function decodeOne(request) {
  if (request.layer === "sio") return decodeSio(request.parser, request.encoded);
  if (request.layer === "eio") {
    const p = eioParser.decodePacket(unmessage(request.encoded), "nodebuffer");
    return { packets: [toJson({ type: EIO_TYPES.indexOf(p.type), data: p.data })] };
  }
  const list = eioParser.decodePayload(unmessage(request.encoded), "nodebuffer");
  return { packets: list.map((p) => toJson({ type: EIO_TYPES.indexOf(p.type), data: p.data })) };
}

function main() {
  const mode = process.argv[2];
  if (mode === "encode") {
    process.stdout.write(JSON.stringify(encodeAll()));
  } else if (mode === "encode-v3") {
    process.stdout.write(JSON.stringify(encodeV3(), null, 1));
  } else if (mode === "decode") {
    const chunks = [];
    process.stdin.on("data", (c) => chunks.push(c));
    process.stdin.on("end", () => {
      const requests = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      process.stdout.write(JSON.stringify(requests.map(decodeOne)));
    });
  } else {
    process.stderr.write("usage: vectors.js encode | encode-v3 | decode\n");
    process.exit(2);
  }
}

main();
