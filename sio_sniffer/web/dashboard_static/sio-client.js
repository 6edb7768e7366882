// sio-sniffer's own Socket.IO client for the dashboard test page: no network fetch of a
// third-party library, no build step. Engine.IO v4 (polling, WebSocket, polling->WebSocket
// upgrade, ping answers and ping timeout) and Socket.IO v5 (namespaces multiplexed on one
// Engine.IO session, CONNECT auth, acks both ways, binary attachments both ways, reconnection).
// The API is the subset of socket.io-client 4 the page uses, so the page can run on either:
//   const socket = SioSniffer.io("http://host:port/hook", {transports, auth, reconnection});
//   socket.on / onAny / emit(name, ...args, ackFn) / disconnect(); socket.id; socket.connected
//   socket.io (the Manager): on("reconnect_attempt" | "reconnect" | "reconnect_error" | "ping")
//   socket.io.engine.transport.name; socket.io.engine.on("upgrade", transport => ...)
"use strict";

(function (global) {
  const EIO = { OPEN: "0", CLOSE: "1", PING: "2", PONG: "3", MESSAGE: "4", UPGRADE: "5", NOOP: "6" };
  const SIO = { CONNECT: 0, DISCONNECT: 1, EVENT: 2, ACK: 3, CONNECT_ERROR: 4, BINARY_EVENT: 5,
    BINARY_ACK: 6 };
  const SEPARATOR = "\x1e";

  class Emitter {
    constructor() { this._listeners = new Map(); }
    on(name, fn) {
      if (!this._listeners.has(name)) this._listeners.set(name, []);
      this._listeners.get(name).push(fn);
      return this;
    }
    off(name, fn) {
      const list = this._listeners.get(name);
      if (list) this._listeners.set(name, fn ? list.filter((f) => f !== fn) : []);
      return this;
    }
    emitLocal(name, ...args) {
      for (const fn of [...(this._listeners.get(name) || [])]) fn(...args);
    }
  }

  function isBinary(value) {
    return value instanceof ArrayBuffer || ArrayBuffer.isView(value);
  }

  function toArrayBuffer(value) {
    if (value instanceof ArrayBuffer) return value;
    return value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength);
  }

  function base64ToArrayBuffer(text) {
    const raw = atob(text);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes.buffer;
  }

  function arrayBufferToBase64(buffer) {
    const bytes = new Uint8Array(buffer);
    let raw = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      raw += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(raw);
  }

  // Engine.IO v4 packets: text "<type><data>"; a binary packet is a message whose data is bytes.
  function encodeEio(packet, forPolling) {
    if (isBinary(packet.data)) {
      return forPolling ? "b" + arrayBufferToBase64(toArrayBuffer(packet.data))
        : toArrayBuffer(packet.data);
    }
    return packet.type + (packet.data === undefined ? "" : packet.data);
  }

  function decodeEio(raw) {
    if (typeof raw !== "string") return { type: EIO.MESSAGE, data: raw };
    if (raw[0] === "b") return { type: EIO.MESSAGE, data: base64ToArrayBuffer(raw.slice(1)) };
    return { type: raw[0], data: raw.slice(1) };
  }

  class PollingTransport extends Emitter {
    constructor(engine) {
      super();
      this.name = "polling";
      this.engine = engine;
      this.polling = false;
      this.writing = false;
      this.paused = false;
      this.closed = false;
      this.controller = new AbortController();
    }

    uri() {
      const query = new URLSearchParams({ EIO: "4", transport: "polling", t: Date.now().toString(36) +
        Math.random().toString(36).slice(2, 6) });
      if (this.engine.id) query.set("sid", this.engine.id);
      return this.engine.baseUrl + "?" + query.toString();
    }

    async poll() {
      if (this.closed || this.paused) return;
      this.polling = true;
      let text;
      try {
        const response = await fetch(this.uri(), { signal: this.controller.signal, cache: "no-store" });
        text = await response.text();
        if (!response.ok) throw new Error(`HTTP ${response.status}: ${text.slice(0, 200)}`);
      } catch (err) {
        this.polling = false;
        if (!this.closed) this.emitLocal("error", `transport error (polling GET failed: ${err.message || err})`);
        return;
      }
      this.polling = false;
      for (const raw of text.split(SEPARATOR)) {
        if (this.closed) return;
        this.emitLocal("packet", decodeEio(raw));
      }
      if (this.paused) this.emitLocal("drain-check");
      else if (!this.closed && this.engine.readyState === "open") this.poll();
    }

    async write(packets) {
      this.writing = true;
      const body = packets.map((p) => encodeEio(p, true)).join(SEPARATOR);
      try {
        const response = await fetch(this.uri(), { method: "POST", body, signal: this.controller.signal,
          headers: { "Content-Type": "text/plain;charset=UTF-8" }, cache: "no-store" });
        const text = await response.text();
        if (!response.ok) throw new Error(`HTTP ${response.status}: ${text.slice(0, 200)}`);
      } catch (err) {
        this.writing = false;
        if (!this.closed) this.emitLocal("error", `transport error (polling POST failed: ${err.message || err})`);
        return;
      }
      this.writing = false;
      this.emitLocal("drain");
      if (this.paused) this.emitLocal("drain-check");
    }

    // Stop polling for an upgrade: resolves once no GET and no POST is in flight (the server
    // answers the pending GET with a NOOP as soon as it has seen the probe).
    pause(done) {
      this.paused = true;
      const check = () => {
        if (!this.polling && !this.writing) {
          this.off("drain-check", check);
          done();
        }
      };
      this.on("drain-check", check);
      check();
    }

    close() {
      this.closed = true;
      this.controller.abort();
    }
  }

  class WebSocketTransport extends Emitter {
    constructor(engine, ws) {
      super();
      this.name = "websocket";
      this.engine = engine;
      this.ws = ws;
      this.writing = false;
      this.closed = false;
      this.attach();
    }

    static open(engine, withSid) {
      const url = new URL(engine.baseUrl);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      url.searchParams.set("EIO", "4");
      url.searchParams.set("transport", "websocket");
      if (withSid) url.searchParams.set("sid", engine.id);
      const ws = new WebSocket(url.toString());
      ws.binaryType = "arraybuffer";
      return ws;
    }

    attach() {
      this.ws.onmessage = (ev) => this.emitLocal("packet", decodeEio(ev.data));
      this.ws.onclose = (ev) => {
        if (!this.closed) {
          this.emitLocal("error", `transport close (websocket code ${ev.code}${ev.reason ? ", " + ev.reason : ""})`);
        }
      };
      this.ws.onerror = () => {
        if (!this.closed) this.emitLocal("error", "transport error (websocket)");
      };
    }

    write(packets) {
      for (const packet of packets) this.ws.send(encodeEio(packet, false));
      this.emitLocal("drain");
    }

    close() {
      this.closed = true;
      try { this.ws.close(); } catch (err) { /* already closed */ }
    }
  }

  // One Engine.IO session. Events: open(info), packet-in(packet), message(data), upgrade(transport),
  // upgrade_error(reason), ping, close(reason).
  class Engine extends Emitter {
    constructor(uri, opts) {
      super();
      const url = new URL(uri);
      const path = (opts.path || "/socket.io/").replace(/\/?$/, "/");
      this.baseUrl = url.origin + path;
      this.transports = opts.transports || ["polling", "websocket"];
      this.id = null;
      this.readyState = "closed";
      this.transport = null;
      this.writeBuffer = [];
      this.upgrading = false;
      this.pingTimer = null;
      this.info = null;
    }

    open() {
      this.readyState = "opening";
      if (this.transports[0] === "websocket") {
        const ws = WebSocketTransport.open(this, false);
        ws.onerror = () => this.onClose("websocket error");
        ws.onclose = (ev) => this.onClose(`websocket closed (code ${ev.code})`);
        ws.onopen = () => this.setTransport(new WebSocketTransport(this, ws));
      } else {
        this.setTransport(new PollingTransport(this));
        this.transport.poll();
      }
    }

    setTransport(transport) {
      if (this.transport) this.transport.close();
      this.transport = transport;
      transport.on("packet", (p) => this.onPacket(p));
      transport.on("error", (reason) => this.onClose(reason));
      transport.on("drain", () => this.flush());
    }

    onPacket(packet) {
      if (this.readyState === "closed") return;
      this.emitLocal("packet-in", packet);
      this.resetPingTimeout();
      switch (packet.type) {
        case EIO.OPEN: {
          try {
            this.info = JSON.parse(packet.data);
          } catch (err) {
            this.onClose(`transport error (OPEN packet is not JSON: ${packet.data.slice(0, 80)})`);
            return;
          }
          this.id = this.info.sid;
          this.readyState = "open";
          this.emitLocal("open", this.info);
          this.flush();
          if (this.transport.name === "polling" && this.transports.includes("websocket") &&
              (this.info.upgrades || []).includes("websocket")) this.probe();
          break;
        }
        case EIO.PING:
          this.emitLocal("ping");
          this.sendPacket({ type: EIO.PONG });
          break;
        case EIO.MESSAGE:
          this.emitLocal("message", packet.data);
          break;
        case EIO.CLOSE:
          this.onClose("transport close");
          break;
        default:
          break;
      }
    }

    resetPingTimeout() {
      if (!this.info) return;
      clearTimeout(this.pingTimer);
      this.pingTimer = setTimeout(() => this.onClose("ping timeout"),
        this.info.pingInterval + this.info.pingTimeout);
    }

    probe() {
      this.upgrading = true;
      const ws = WebSocketTransport.open(this, true);
      const fail = (reason) => {
        if (!this.upgrading) return;
        this.upgrading = false;
        ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
        try { ws.close(); } catch (err) { /* already closed */ }
        this.emitLocal("upgrade_error", reason);
      };
      ws.onerror = () => fail("websocket error during the probe");
      ws.onclose = (ev) => fail(`websocket closed during the probe (code ${ev.code})`);
      ws.onopen = () => ws.send(EIO.PING + "probe");
      ws.onmessage = (ev) => {
        if (ev.data !== EIO.PONG + "probe") {
          fail(`unexpected probe answer ${String(ev.data).slice(0, 40)}`);
          return;
        }
        const polling = this.transport;
        polling.pause(() => {
          if (this.readyState !== "open" || !this.upgrading) {
            ws.close();
            return;
          }
          this.upgrading = false;
          ws.send(EIO.UPGRADE);
          this.setTransport(new WebSocketTransport(this, ws));
          this.emitLocal("upgrade", this.transport);
          this.flush();
        });
      };
    }

    sendPacket(packet) {
      if (this.readyState === "closed") return;
      this.writeBuffer.push(packet);
      this.flush();
    }

    flush() {
      const t = this.transport;
      if (this.readyState !== "open" || !t || !this.writeBuffer.length || t.writing) return;
      if (t.name === "polling" && t.paused) return;
      const packets = this.writeBuffer;
      this.writeBuffer = [];
      t.write(packets);
    }

    close() {
      if (this.readyState === "open") {
        this.writeBuffer.push({ type: EIO.CLOSE });
        this.flush();
      }
      this.onClose("forced close");
    }

    onClose(reason) {
      if (this.readyState === "closed") return;
      this.readyState = "closed";
      this.upgrading = false;
      clearTimeout(this.pingTimer);
      // A polling CLOSE goes out in a POST that must not be aborted; a WebSocket one is sent.
      const t = this.transport;
      if (t) setTimeout(() => t.close(), t.name === "polling" && reason === "forced close" ? 1000 : 0);
      this.emitLocal("close", reason);
    }
  }

  // Socket.IO v5 packets: "<type>[<attachments>-][<nsp>,][<id>][<json>]" + attachments.
  function deconstruct(data, buffers) {
    if (isBinary(data)) {
      buffers.push(toArrayBuffer(data));
      return { _placeholder: true, num: buffers.length - 1 };
    }
    if (Array.isArray(data)) return data.map((item) => deconstruct(item, buffers));
    if (data && typeof data === "object" && !(data instanceof Date)) {
      const out = {};
      for (const key of Object.keys(data)) out[key] = deconstruct(data[key], buffers);
      return out;
    }
    return data;
  }

  function reconstruct(data, buffers) {
    if (Array.isArray(data)) return data.map((item) => reconstruct(item, buffers));
    if (data && typeof data === "object") {
      if (data._placeholder === true && typeof data.num === "number") {
        if (data.num < 0 || data.num >= buffers.length) throw new Error("bad attachment index");
        return buffers[data.num];
      }
      const out = {};
      for (const key of Object.keys(data)) out[key] = reconstruct(data[key], buffers);
      return out;
    }
    return data;
  }

  function encodeSio(packet) {
    const buffers = [];
    let data = packet.data;
    let type = packet.type;
    if (data !== undefined) {
      data = deconstruct(data, buffers);
      if (buffers.length && type === SIO.EVENT) type = SIO.BINARY_EVENT;
      if (buffers.length && type === SIO.ACK) type = SIO.BINARY_ACK;
    }
    let text = String(type);
    if (buffers.length) text += buffers.length + "-";
    if (packet.nsp && packet.nsp !== "/") text += packet.nsp + ",";
    if (packet.id !== undefined && packet.id !== null) text += packet.id;
    if (data !== undefined) text += JSON.stringify(data);
    return [text, ...buffers];
  }

  function decodeSio(text) {
    const packet = { type: Number(text[0]), nsp: "/", attachments: 0 };
    if (!(packet.type >= 0 && packet.type <= 6)) throw new Error(`unknown packet type ${text[0]}`);
    let i = 1;
    if (packet.type === SIO.BINARY_EVENT || packet.type === SIO.BINARY_ACK) {
      const dash = text.indexOf("-", i);
      if (dash < 0) throw new Error("binary packet without attachment count");
      packet.attachments = Number(text.slice(i, dash));
      i = dash + 1;
    }
    if (text[i] === "/") {
      const comma = text.indexOf(",", i);
      const end = comma < 0 ? text.length : comma;
      packet.nsp = text.slice(i, end);
      i = comma < 0 ? end : end + 1;
    }
    let digits = "";
    while (i < text.length && text[i] >= "0" && text[i] <= "9") digits += text[i++];
    if (digits) packet.id = Number(digits);
    if (i < text.length) packet.data = JSON.parse(text.slice(i));
    return packet;
  }

  class Manager extends Emitter {
    constructor(uri, opts) {
      super();
      this.uri = uri;
      this.opts = opts;
      this.nsps = new Map();
      this.engine = null;
      this.pending = null;
      this.attempts = 0;
      this.reconnecting = false;
      this.skipReconnect = false;
      this.reconnectTimer = null;
    }

    socket(nsp, opts) {
      if (!this.nsps.has(nsp)) this.nsps.set(nsp, new Socket(this, nsp, opts));
      return this.nsps.get(nsp);
    }

    open() {
      if (this.engine && this.engine.readyState !== "closed") return;
      this.skipReconnect = false;
      const engine = new Engine(this.uri, this.opts);
      this.engine = engine;
      this.pending = null;
      engine.on("open", () => {
        if (this.reconnecting) {
          this.reconnecting = false;
          const attempts = this.attempts;
          this.attempts = 0;
          this.emitLocal("reconnect", attempts);
        }
        this.emitLocal("open");
        for (const socket of this.nsps.values()) if (socket.active) socket.sendConnect();
      });
      engine.on("message", (data) => this.onData(data));
      engine.on("ping", () => this.emitLocal("ping"));
      engine.on("close", (reason) => this.onClose(engine, reason));
      engine.open();
    }

    onData(data) {
      try {
        if (typeof data === "string") {
          const packet = decodeSio(data);
          if (packet.attachments > 0) {
            this.pending = { packet, buffers: [] };
            return;
          }
          this.dispatch(packet);
        } else if (this.pending) {
          this.pending.buffers.push(data);
          if (this.pending.buffers.length === this.pending.packet.attachments) {
            const { packet, buffers } = this.pending;
            this.pending = null;
            packet.data = reconstruct(packet.data, buffers);
            this.dispatch(packet);
          }
        } else {
          this.emitLocal("error", new Error("binary message without a packet announcing it"));
        }
      } catch (err) {
        this.emitLocal("error", err);
      }
    }

    dispatch(packet) {
      const socket = this.nsps.get(packet.nsp);
      if (socket) socket.onPacket(packet);
    }

    send(packet) {
      const [text, ...buffers] = encodeSio(packet);
      this.engine.sendPacket({ type: EIO.MESSAGE, data: text });
      for (const buffer of buffers) this.engine.sendPacket({ type: EIO.MESSAGE, data: buffer });
    }

    onClose(engine, reason) {
      if (engine !== this.engine) return;
      for (const socket of this.nsps.values()) socket.onEngineClose(reason);
      this.emitLocal("close", reason);
      if (!this.skipReconnect && this.opts.reconnection !== false) this.scheduleReconnect();
    }

    scheduleReconnect() {
      const base = this.opts.reconnectionDelay ?? 1000;
      const max = this.opts.reconnectionDelayMax ?? 5000;
      const delay = Math.min(base * 2 ** this.attempts, max) * (0.75 + Math.random() * 0.5);
      this.attempts += 1;
      this.reconnecting = true;
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = setTimeout(() => {
        if (this.skipReconnect) return;
        this.emitLocal("reconnect_attempt", this.attempts);
        this.open();
      }, delay);
    }

    maybeClose() {
      if ([...this.nsps.values()].some((s) => s.active)) return;
      this.skipReconnect = true;
      clearTimeout(this.reconnectTimer);
      if (this.engine) this.engine.close();
    }
  }

  class Socket extends Emitter {
    constructor(manager, nsp, opts) {
      super();
      this.io = manager;
      this.nsp = nsp;
      this.auth = opts.auth;
      this.id = undefined;
      this.connected = false;
      this.active = false;
      this.ids = 0;
      this.acks = new Map();
      this.sendBuffer = [];
      this.receiveBuffer = [];
      this.anyListeners = [];
    }

    connect() {
      if (this.active) return this;
      this.active = true;
      if (this.io.engine && this.io.engine.readyState === "open") this.sendConnect();
      else this.io.open();
      return this;
    }

    sendConnect() {
      this.io.send({ type: SIO.CONNECT, nsp: this.nsp, data: this.auth === undefined ? undefined : this.auth });
    }

    onAny(fn) {
      this.anyListeners.push(fn);
      return this;
    }

    emit(name, ...args) {
      const packet = { type: SIO.EVENT, nsp: this.nsp, data: [name, ...args] };
      if (typeof args[args.length - 1] === "function") {
        const ack = args.pop();
        packet.data = [name, ...args];
        packet.id = this.ids++;
        this.acks.set(packet.id, ack);
      }
      if (this.connected) this.io.send(packet);
      else this.sendBuffer.push(packet);
      return this;
    }

    onPacket(packet) {
      switch (packet.type) {
        case SIO.CONNECT:
          this.id = packet.data && packet.data.sid;
          this.connected = true;
          this.emitLocal("connect");
          for (const args of this.receiveBuffer.splice(0)) this.dispatchEvent(args);
          for (const out of this.sendBuffer.splice(0)) this.io.send(out);
          break;
        case SIO.CONNECT_ERROR: {
          this.active = false;
          const data = packet.data;
          const message = data && typeof data === "object" ? String(data.message) : String(data);
          const err = new Error(message);
          err.data = data && typeof data === "object" ? data.data : undefined;
          err.raw = data;
          this.emitLocal("connect_error", err);
          this.io.maybeClose();
          break;
        }
        case SIO.EVENT:
        case SIO.BINARY_EVENT: {
          const args = Array.isArray(packet.data) ? [...packet.data] : [];
          if (packet.id !== undefined) args.push(this.makeAck(packet.id));
          if (this.connected) this.dispatchEvent(args);
          else this.receiveBuffer.push(args);
          break;
        }
        case SIO.ACK:
        case SIO.BINARY_ACK: {
          const ack = this.acks.get(packet.id);
          this.acks.delete(packet.id);
          if (ack) ack(...(Array.isArray(packet.data) ? packet.data : []));
          break;
        }
        case SIO.DISCONNECT:
          this.active = false;
          this.onClose("io server disconnect");
          this.io.maybeClose();
          break;
        default:
          break;
      }
    }

    makeAck(id) {
      let sent = false;
      return (...args) => {
        if (sent) return;
        sent = true;
        this.io.send({ type: SIO.ACK, nsp: this.nsp, id, data: args });
      };
    }

    dispatchEvent(args) {
      for (const fn of [...this.anyListeners]) fn(...args);
      this.emitLocal(...args);
    }

    onEngineClose(reason) {
      if (this.connected) this.onClose(reason);
      else if (this.active) this.emitLocal("connect_error", new Error(reason));
    }

    onClose(reason) {
      this.connected = false;
      this.id = undefined;
      this.acks.clear();
      this.emitLocal("disconnect", reason);
    }

    disconnect() {
      if (this.connected) this.io.send({ type: SIO.DISCONNECT, nsp: this.nsp });
      this.active = false;
      if (this.connected) this.onClose("io client disconnect");
      this.io.maybeClose();
      return this;
    }
  }

  const managers = new Map();

  function io(uri, opts = {}) {
    const url = new URL(uri);
    const nsp = url.pathname && url.pathname !== "" ? url.pathname : "/";
    const key = url.origin + "|" + (opts.path || "/socket.io/");
    let manager = managers.get(key);
    if (!manager || opts.forceNew || manager.nsps.has(nsp)) {
      manager = new Manager(url.origin, opts);
      if (!opts.forceNew) managers.set(key, manager);
    }
    return manager.socket(nsp, opts).connect();
  }

  global.SioSniffer = { io, Manager, Socket, Engine, encodeSio, decodeSio, protocol: 5 };
})(typeof window !== "undefined" ? window : globalThis);
