"""The cluster link: one sniffer of a cluster joins the Redis the app's adapter already runs.

It reads, never writes, the adapter's channels (python-socketio's ``AsyncRedisManager`` /
``RedisManager`` publish JSON ``{"method": "emit", "event", "data", "namespace", "room",
"skip_sid", "host_id", ...}`` on ``socketio``; Node's ``@socket.io/redis-adapter`` publishes
msgpack ``[uid, {"type", "data": [name, ...args], "nsp"}, {"rooms", "except", "flags"}]`` on
``socket.io#<nsp>#`` and ``socket.io#<nsp>#<room>#``; its sharded adapter SPUBLISHes the cluster
adapter's ``{uid, nsp, type, data}`` on shard channels of the same names, which the link finds
with PUBSUB SHARDCHANNELS and SSUBSCRIBEs to; its streams adapter XADDs the same messages,
as the fields ``uid``, ``nsp``, ``type`` and ``data``, to the stream ``socket.io``, which the
link XREADs, read-only, new entries only), and it publishes on a channel of its own
what its clients were delivered (digests of the scalars, not the payload) and, every second,
which clients it has. What it reads becomes records for the analysis (:mod:`sio_sniffer.model
.cluster`); nothing here judges. A message it cannot understand (garbage, truncated, of the
wrong shape or an unknown type, oversized) is skipped and counted: one ``decode_error`` record
per kind as it first happens, one with the kind's total when the link stops.

The link is off the data path: the records it watches are copies, its queue is bounded and a
missing, slow or restarted Redis only turns the shared view off (said once, with the fix) until
it is back (said once too); traffic never waits on it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sio_sniffer import model
from sio_sniffer.model import Record
from sio_sniffer.model import cluster as C

DEFAULT_ADAPTER_CHANNELS = ("socketio", "socket.io#*")
# An adapter "channel" of this form is a Redis stream the link XREADs (Node's
# @socket.io/redis-streams-adapter XADDs its messages to one); with none named, the default
# stream is read, once it exists and is a stream.
STREAM_PREFIX = "stream:"
DEFAULT_STREAMS = ("socket.io",)
# XREAD BLOCK this long (ms; under COMMAND_TIMEOUT, which bounds every command) and this many
# entries at most a call.
STREAM_BLOCK_MS = 500
STREAM_COUNT = 100
# Deliveries waiting for Redis; past this the oldest are dropped (and counted), never traffic.
MAX_PENDING = 2048
# A message larger than this on any channel we read is skipped unread: an emit carrying a big
# payload costs us its digests only, and those of its first MAX_DIGESTS scalars suffice.
MAX_MESSAGE = 1024 * 1024
PRESENCE_EVERY = 1.0
RETRY_EVERY = 0.5
# Redis must answer a command (connect, subscribe, publish) within this, or the view is off.
COMMAND_TIMEOUT = 2.0
MAX_TRACKED_CLIENTS = 4096
# Shard channels (Redis >= 7, SSUBSCRIBE has no patterns) are found by asking Redis which exist
# under the adapter patterns, this often, and at most this many are read.
DISCOVER_EVERY = 0.5
MAX_SHARD_CHANNELS = 256
# Kinds of malformed message told apart (per channel); past this they share one count.
MAX_ERROR_KINDS = 32
# How much of the first malformed message of a kind its record keeps (base64).
ERROR_RAW = 48


class ClusterError(ValueError):
    """A --cluster setting that cannot work; the message says what to write instead."""


@dataclass(frozen=True)
class ClusterConfig:
    """Where the cluster's Redis is and what this node is called in it."""

    url: str
    node: str
    adapter_channels: tuple[str, ...] = DEFAULT_ADAPTER_CHANNELS
    channel: str = "sio-sniffer#socketio"

    def __post_init__(self) -> None:
        check_url(self.url)
        if not self.node:
            raise ClusterError("--cluster-node needs a name for this node (such as its host name)")
        if any(c.startswith(STREAM_PREFIX) and not c[len(STREAM_PREFIX):]
               for c in self.adapter_channels):
            raise ClusterError(f"--cluster-channel {STREAM_PREFIX} needs the stream's name "
                               f"(such as {STREAM_PREFIX}socket.io)")

    @property
    def pubsub_channels(self) -> tuple[str, ...]:
        """The adapter channels read with (P)SUBSCRIBE (a * makes one a pattern)."""
        return tuple(c for c in self.adapter_channels if not c.startswith(STREAM_PREFIX))

    @property
    def streams(self) -> tuple[str, ...]:
        """The streams read with XREAD: those named ``stream:NAME``, else the default one."""
        named = tuple(c[len(STREAM_PREFIX):] for c in self.adapter_channels
                      if c.startswith(STREAM_PREFIX))
        return named or DEFAULT_STREAMS


def check_url(url: str) -> None:
    """Raise :class:`ClusterError` unless ``url`` is redis://HOST:PORT[/DB]."""
    parts = urlsplit(url)
    db = parts.path.strip("/")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("redis", "rediss") or not parts.hostname or (db and not db.isdigit()) \
            or (parts.netloc.rsplit("@", 1)[-1].count(":") and port is None):
        raise ClusterError(f"--cluster wants the Redis the app's adapter uses, as "
                           f"redis://HOST:PORT[/DB] (such as redis://127.0.0.1:6379/0), "
                           f"not {url!r}")


class Malformed(ValueError):
    """A message on a channel the link reads that it cannot understand: ``reason`` is its kind
    (one of a few fixed sentences, so a flood of them is one kind), ``detail`` this one's."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


# What the adapters publish besides emits: understood, and not an emit (not an error either).
PYTHON_METHODS = frozenset({"emit", "callback", "disconnect", "enter_room", "leave_room",
                            "close_room"})
NODE_PACKET_TYPES = frozenset(range(7))  # CONNECT .. BINARY_ACK; 2 and 5 are the events
PEER_KINDS = frozenset({"d", "p"})
# The cluster adapter's message types (socket.io-adapter's MessageType: INITIAL_HEARTBEAT ..
# ADAPTER_CLOSE); BROADCAST is the one that carries an emit.
SHARDED_TYPES = frozenset(range(1, 14))
SHARDED_BROADCAST = 3


def parse_adapter(data: bytes) -> dict[str, Any] | None:
    """An emit published on an adapter channel, as ``{"host", "nsp", "name", "room", "args",
    "adapter"}``; None for a message that is understood and is not an emit (room joins,
    callbacks, other packets). Raises :class:`Malformed` for one that is not understood."""
    if data[:1] in (b"{", b"["):  # JSON (msgpack never starts a message with these)
        msg = _loads(data)
        if not isinstance(msg, dict) or not isinstance(msg.get("method"), str):
            raise Malformed("JSON of the wrong shape (not an object with a method)",
                            type(msg).__name__)
        method = msg["method"]
        if method not in PYTHON_METHODS:
            raise Malformed("an unknown python-socketio method", method[:40])
        if method != "emit":
            return None
        event, nsp = msg.get("event"), msg.get("namespace") or "/"
        if not isinstance(event, str) or not isinstance(nsp, str):
            raise Malformed("a python-socketio emit of the wrong shape (event or namespace not "
                            "a string)")
        args = msg.get("data")
        return {"adapter": "python-socketio", "host": str(msg.get("host_id") or "?"),
                "nsp": nsp, "name": event, "room": _room(msg.get("room")),
                "args": args if isinstance(args, list) else [args]}
    if data[:1] == b"\x80":
        # python-socketio before 5.x published pickles: never unpickled (that runs code).
        raise Malformed("a pickle (an older python-socketio's manager): not read, unpickling "
                        "runs code; upgrade python-socketio to publish JSON")
    msg = _unpack(data)
    if not (isinstance(msg, list) and len(msg) >= 2 and isinstance(msg[1], dict)):
        raise Malformed("msgpack of the wrong shape (not [uid, packet, opts])",
                        type(msg).__name__)
    opts = msg[2] if len(msg) > 2 and isinstance(msg[2], dict) else {}
    return _node_emit("node", str(msg[0]), msg[1], opts)


def parse_sharded(data: bytes) -> dict[str, Any] | None:
    """An emit of ``@socket.io/redis-adapter``'s sharded adapter (``createShardedAdapter``,
    SPUBLISH on ``socket.io#<nsp>#`` and ``socket.io#<nsp>#<room>#``: the cluster adapter's
    ``{uid, nsp, type, data}``, JSON, or msgpack when it carries binary), as
    :func:`parse_adapter` gives it; None for its other messages (heartbeats, requests)."""
    msg = _loads(data) if data[:1] == b"{" else _unpack(data)
    return cluster_message(msg, "node-sharded", "sharded adapter")


def parse_stream_entry(fields: dict[str, bytes]) -> dict[str, Any] | None:
    """An emit of Node's ``@socket.io/redis-streams-adapter``, from one entry of its stream
    (XADD ``socket.io``): the fields ``uid``, ``nsp``, ``type`` (the cluster adapter's message
    type, in decimal) and ``data`` (JSON, or base64 msgpack when it carries binary), made the
    cluster adapter's ``{uid, nsp, type, data}`` and read as the sharded adapter's are (see
    :func:`cluster_message`); None for its other messages."""
    def text(name: str) -> str | None:
        value = fields.get(name)
        if value is None:
            return None
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise Malformed("a streams adapter entry that is not text", name) from None

    uid, nsp, kind, body = text("uid"), text("nsp"), text("type"), text("data")
    if not nsp or kind is None or not kind.isdigit():
        raise Malformed("a streams adapter entry of the wrong shape (not uid, nsp, type, data)",
                        ",".join(sorted(fields))[:80])
    msg: dict[str, Any] = {"uid": uid, "nsp": nsp, "type": int(kind)}
    if body:
        if body.startswith("{"):
            msg["data"] = _loads(body)
        else:
            try:
                raw = base64.b64decode(body, validate=True)
            except ValueError:
                raise Malformed("a streams adapter entry's data neither JSON nor base64") \
                    from None
            msg["data"] = _unpack(raw)
    return cluster_message(msg, "node-streams", "streams adapter")


def cluster_message(msg: Any, adapter: str, what: str) -> dict[str, Any] | None:
    """The cluster adapter's ``{uid, nsp, type, data}`` message (socket.io-adapter's
    ``ClusterAdapter``, which the sharded and the streams adapters carry), as
    :func:`parse_adapter` gives an emit: its BROADCAST's packet; None for its other types.
    ``what`` names the adapter in the reasons of :class:`Malformed`."""
    kind = msg.get("type") if isinstance(msg, dict) else None
    if not isinstance(kind, int) or isinstance(kind, bool):
        raise Malformed(f"a {what} message of the wrong shape (not {{uid, nsp, type, "
                        f"data}})", type(msg).__name__)
    if kind not in SHARDED_TYPES:
        raise Malformed(f"an unknown {what} message type", str(kind))
    if kind != SHARDED_BROADCAST:
        return None
    body = msg.get("data")
    if not isinstance(body, dict) or not isinstance(body.get("packet"), dict):
        raise Malformed(f"a {what} broadcast of the wrong shape (no packet)")
    packet = body["packet"]
    opts = body["opts"] if isinstance(body.get("opts"), dict) else {}
    if not packet.get("nsp") and isinstance(msg.get("nsp"), str):
        packet = {**packet, "nsp": msg["nsp"]}
    return _node_emit(adapter, str(msg.get("uid")), packet, opts)


def _loads(data: bytes | str) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise Malformed("not JSON (truncated or garbled)", str(exc)[:80]) from None


def _unpack(data: bytes) -> Any:
    import msgpack

    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except msgpack.ExtraData:
        raise Malformed("not msgpack (bytes after the first value)") from None
    except ValueError as exc:
        if "incomplete" in str(exc):
            raise Malformed("truncated msgpack") from None
        raise Malformed("not msgpack", str(exc)[:80]) from None
    except Exception as exc:  # msgpack's other refusals (depth, types): the app's, not ours
        raise Malformed("not msgpack", type(exc).__name__) from None


def _node_emit(adapter: str, host: str, packet: dict[str, Any],
               opts: dict[str, Any]) -> dict[str, Any] | None:
    """A Socket.IO packet a Node adapter broadcast, as an emit (None: not an event)."""
    kind = packet.get("type")
    if not isinstance(kind, int) or isinstance(kind, bool) or kind not in NODE_PACKET_TYPES:
        raise Malformed("an unknown Socket.IO packet type", repr(kind)[:40])
    if kind not in (2, 5):
        return None
    payload = packet.get("data")
    nsp = packet.get("nsp") or "/"
    if not isinstance(payload, list) or not payload or not isinstance(payload[0], str) \
            or not isinstance(nsp, str):
        raise Malformed("a Node adapter event of the wrong shape (no [name, ...args] data)")
    rooms = opts.get("rooms") or []
    rooms = rooms if isinstance(rooms, list) else [rooms]
    return {"adapter": adapter, "host": host[:64], "nsp": nsp, "name": payload[0],
            "room": _room(rooms[0] if len(rooms) == 1 else (rooms or None)),
            "args": payload[1:]}


def _room(room: Any) -> Any:
    """A room (or rooms) as the cause may print it: a string, a few strings, or None."""
    if room is None or isinstance(room, str):
        return room
    if isinstance(room, list):
        return [str(r)[:80] for r in room[:8]]
    return str(room)[:80]


def decode_adapter(data: bytes) -> dict[str, Any] | None:
    """:func:`parse_adapter`, with None for a malformed message as well."""
    try:
        return parse_adapter(data)
    except Malformed:
        return None


def parse_peer(data: bytes) -> dict[str, Any]:
    """A peer sniffer's message: ``{"kind": "d", "node", "nsp", "name", "d": [digests]}`` or
    ``{"kind": "p", "node", "clients": {nsp: n}}``. Raises :class:`Malformed`."""
    msg = _loads(data)
    if not isinstance(msg, dict) or not isinstance(msg.get("node"), str):
        raise Malformed("JSON of the wrong shape (not an object with a node)",
                        type(msg).__name__)
    kind = msg.get("kind")
    if kind not in PEER_KINDS:
        raise Malformed("an unknown sniffer message kind", repr(kind)[:40])
    if kind == "d" and not (isinstance(msg.get("d"), list)
                            and isinstance(msg.get("nsp"), (str, type(None)))
                            and isinstance(msg.get("name"), (str, type(None)))):
        raise Malformed("a delivery of the wrong shape (no list of digests)")
    if kind == "p" and not isinstance(msg.get("clients"), dict):
        raise Malformed("a presence of the wrong shape (no clients by namespace)")
    return msg


class ClusterLink:
    """Joins Redis, reads the adapter and the peer sniffers, publishes this node's deliveries.

    ``fact`` hears the cluster records for the analysis; ``state`` hears the one record that
    says the view went off or came back (for the log); ``clock`` is the analysis clock the
    facts are stamped with (the traffic's time, so a fact never runs ahead of copies still
    queued); ``say`` prints the one-sentence notices."""

    def __init__(self, config: ClusterConfig, fact: Callable[[Record], None],
                 state: Callable[[Record], None], clock: Callable[[], float],
                 say: Callable[[str], None]) -> None:
        self.config = config
        self._fact = fact
        self._state = state
        self._clock = clock
        self._say = say
        self._pending: deque[dict[str, Any]] = deque(maxlen=MAX_PENDING)
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.on = False
        self._said_off = False
        self.dropped = 0  # deliveries not shared: the queue was full (Redis slow)
        # nsp -> Engine.IO sessions connected on it here (for the presence message)
        self._clients: dict[str, set[str]] = {}
        self._presence_due = True
        self._stopping = False
        # (channel, reason) -> messages of that kind skipped: the first is recorded at once,
        # the total when the link stops; a flood of garbage is two records, not a flood.
        self.errors: dict[tuple[str, str], int] = {}
        # Shard channels read (SSUBSCRIBE'd), and those found and not yet subscribed to; None
        # once Redis said it has none (before 7.0: PUBSUB SHARDCHANNELS unknown).
        self.shard_channels: set[str] = set()
        self._new_shards: set[str] = set()
        self._sharded: bool | None = True
        # Streams read (XREAD) -> the id of the last entry read; a stream is added once it
        # exists and is a stream.
        self.stream_offsets: dict[str, str] = {}
        # Streams looked for and missing on this connection: read from their start once found.
        self.streams_absent: set[str] = set()

    # -- the record sink: what this node's clients got -------------------------------------

    def record(self, record: Record) -> None:
        """A copy of this node's traffic: deliveries are published, connects counted."""
        event = record.event
        if event == model.SIO_EVENT and record.dir == "out":
            body = [record.name, *(record.args if isinstance(record.args, list)
                                   else [record.args])]
            self._queue({"kind": "d", "nsp": record.nsp, "name": record.name,
                         "d": C.digests(body[1:])})
        elif event == model.SIO_CONNECT_OK and record.eio_sid and record.nsp:
            members = self._clients.setdefault(record.nsp, set())
            if len(members) < MAX_TRACKED_CLIENTS:
                members.add(record.eio_sid)
            self._presence_changed()
        elif event == model.SIO_DISCONNECT and record.nsp in self._clients:
            self._clients[record.nsp].discard(record.eio_sid or "")
            self._presence_changed()
        elif event == model.EIO_CLOSE:
            for members in self._clients.values():
                members.discard(record.eio_sid or "")
            self._presence_changed()

    def _presence_changed(self) -> None:
        # Told at once, not at the next second: a loss judged meanwhile names who was where.
        self._presence_due = True
        self._wakeup.set()

    def _queue(self, message: dict[str, Any]) -> None:
        if not self.on:
            return  # nobody to tell: deliveries of an outage are not replayed later
        if len(self._pending) == self._pending.maxlen:
            self.dropped += 1
        message["node"] = self.config.node
        self._pending.append(message)
        self._wakeup.set()

    # -- running ------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        # A flag as well as the cancel: the Redis client may swallow a cancellation that
        # lands inside one of its commands, and the loops would go on.
        self._stopping = True
        self._wakeup.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._tell_errors()
        if self.dropped:
            self._say(f"{self.dropped} deliveries were not shared with the cluster: Redis took "
                      f"them slower than they came (their expectations on other nodes were "
                      f"judged without them)")

    async def _run(self) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        while not self._stopping:
            client = aioredis.Redis.from_url(
                self.config.url, socket_connect_timeout=COMMAND_TIMEOUT,
                socket_timeout=COMMAND_TIMEOUT, retry_on_timeout=False)
            pubsub: Any = client.pubsub(ignore_subscribe_messages=True)
            try:
                plain = [c for c in self.config.pubsub_channels if "*" not in c]
                patterns = [c for c in self.config.pubsub_channels if "*" in c]
                # Redis's own socket timeouts bound every command (see COMMAND_TIMEOUT).
                await pubsub.subscribe(*plain, self.config.channel)
                if patterns:
                    await pubsub.psubscribe(*patterns)
                self.shard_channels = set()
                self._new_shards = set()
                self.stream_offsets = {}
                self.streams_absent = set()
                self._went_on()
                await self._serve(client, pubsub)
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                self._went_off(exc)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(RETRY_EVERY)

    async def _serve(self, client: Any, pubsub: Any) -> None:
        loop = asyncio.get_running_loop()
        publisher = loop.create_task(self._publish(client))
        reader = loop.create_task(self._read_streams(client))
        try:
            while not self._stopping:
                for task in (publisher, reader):
                    if task.done():
                        task.result()  # its error ends this connection too
                if self._new_shards:
                    new, self._new_shards = sorted(self._new_shards), set()
                    await pubsub.ssubscribe(*new)
                    self.shard_channels.update(new)
                message = await pubsub.get_message(timeout=0.2)
                if message is not None:
                    self._heard(message)
        finally:
            for task in (publisher, reader):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _read_streams(self, client: Any) -> None:
        """Read the adapter's streams (Node's @socket.io/redis-streams-adapter), read-only:
        XREAD BLOCK, never a consumer group, never a trim, the app owns them. A stream found
        already there is read from its last entry on (what was added before we joined is not
        ours to judge; ``$`` is resolved to that entry's id once, so nothing added between two
        XREADs is missed); one missing when we look is XREAD from its start (XREAD waits for a
        key to appear: its first entry came after we joined). A key of another type is not
        read, and looked at again every DISCOVER_EVERY."""
        from redis.exceptions import ResponseError

        offsets = self.stream_offsets
        wanted = list(self.config.streams)
        last_look = -math.inf
        while not self._stopping:
            now = time.monotonic()
            if len(offsets) < len(wanted) and now - last_look >= DISCOVER_EVERY:
                last_look = now
                for name in wanted:
                    if name not in offsets:
                        await self._look_for_stream(client, name)
            if not offsets:
                await asyncio.sleep(DISCOVER_EVERY)
                continue
            try:
                reply = await client.xread(dict(offsets), count=STREAM_COUNT,
                                           block=STREAM_BLOCK_MS)
            except ResponseError as exc:
                if "WRONGTYPE" not in str(exc):
                    raise
                # A missing one became a key of another type: not read, looked at again.
                for name in list(offsets):
                    if await client.type(name) not in (b"stream", b"none", "stream", "none"):
                        del offsets[name]
                last_look = time.monotonic()
                continue
            for stream, entries in reply or ():
                name = stream.decode(errors="replace") if isinstance(stream, bytes) \
                    else str(stream)
                for entry_id, fields in entries:
                    offsets[name] = entry_id.decode() if isinstance(entry_id, bytes) \
                        else str(entry_id)
                    self._heard_entry(name, fields)

    async def _look_for_stream(self, client: Any, name: str) -> None:
        kind = await client.type(name)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        if kind == "none":
            self.streams_absent.add(name)
            self.stream_offsets[name] = "0-0"
        elif kind == "stream":
            last = [] if name in self.streams_absent else await client.xrevrange(name, count=1)
            entry_id = last[0][0] if last else b"0-0"
            self.stream_offsets[name] = entry_id.decode() if isinstance(entry_id, bytes) \
                else str(entry_id)

    def _heard_entry(self, stream: str, fields: Any) -> None:
        """One entry of an adapter stream: as :meth:`_heard` a message (never raises)."""
        channel = STREAM_PREFIX + stream
        raw = b""
        try:
            if not isinstance(fields, dict):
                raise Malformed("a streams adapter entry of the wrong shape (not uid, nsp, "
                                "type, data)", type(fields).__name__)
            entry = {(k.decode(errors="replace") if isinstance(k, bytes) else str(k)):
                     (v if isinstance(v, bytes) else str(v).encode())
                     for k, v in fields.items()}
            raw = b" ".join(k.encode() + b"=" + v for k, v in entry.items())
            size = sum(len(k) + len(v) for k, v in entry.items())
            if size > MAX_MESSAGE:
                raise Malformed(f"larger than {MAX_MESSAGE // 1024} KiB (skipped unread)",
                                f"{size} bytes")
            self._emitted(parse_stream_entry(entry))
        except Malformed as exc:
            self._malformed(channel, raw, exc.reason, exc.detail)
        except Exception as exc:  # an entry must never end the link
            self._malformed(channel, raw, "could not be read", type(exc).__name__)

    def _emitted(self, emit: dict[str, Any] | None) -> None:
        if emit is None:
            return
        self._fact(Record(C.CLUSTER_EMIT, self._clock(), nsp=emit["nsp"], name=emit["name"],
                          extra={"adapter": emit["adapter"], "host": emit["host"],
                                 "room": emit["room"], "digests": C.digests(emit["args"])}))

    async def _publish(self, client: Any) -> None:
        last_presence = last_discovery = -math.inf
        self._presence_due = True  # a (re)joined peer learns at once who is here
        while not self._stopping:
            now = time.monotonic()
            if self._sharded and now - last_discovery >= DISCOVER_EVERY:
                last_discovery = now
                await self._discover(client)
            if self._presence_due or now - last_presence >= PRESENCE_EVERY:
                self._presence_due = False
                last_presence = now
                clients = {nsp: len(m) for nsp, m in self._clients.items() if m}
                self._pending.append({"kind": "p", "node": self.config.node,
                                      "clients": clients})
            for message in _collapse(self._pending):
                body = json.dumps(message, separators=(",", ":")).encode()
                await client.publish(self.config.channel, body)
            # Woken by a delivery or a client change, or for the next presence (or shard
            # discovery). Not wait_for: in Python 3.11 it loses a cancellation that meets a
            # wakeup.
            timer = asyncio.get_running_loop().call_later(
                DISCOVER_EVERY if self._sharded else PRESENCE_EVERY, self._wakeup.set)
            try:
                await self._wakeup.wait()
            finally:
                timer.cancel()
            self._wakeup.clear()

    async def _discover(self, client: Any) -> None:
        """The shard channels under the adapter patterns (the sharded adapter SPUBLISHes on
        them; SSUBSCRIBE takes no pattern): new ones are subscribed to by the reading loop."""
        from redis.exceptions import ResponseError

        found: set[str] = set()
        for pattern in self.config.pubsub_channels:
            if "*" not in pattern:
                continue
            try:
                names = await client.execute_command("PUBSUB", "SHARDCHANNELS", pattern)
            except ResponseError:
                self._sharded = None  # Redis before 7: no shard channels to read
                return
            found.update(n.decode(errors="replace") if isinstance(n, bytes) else str(n)
                         for n in names or ())
        found.discard(self.config.channel)
        room = MAX_SHARD_CHANNELS - len(self.shard_channels)
        new = sorted(found - self.shard_channels)[:max(room, 0)]
        if new:
            self._new_shards.update(new)

    def _went_on(self) -> None:
        if self.on:
            return
        self.on = True
        was_off = self._said_off
        self._said_off = False
        self._state(Record(C.CLUSTER_STATE, time.time(), extra={
            "state": "on", "url": self.config.url, "node": self.config.node}))
        if was_off:
            self._say(f"the cluster view is back: Redis at {self.config.url} answers again, "
                      f"and node {self.config.node} judges with its peers")

    def _went_off(self, exc: BaseException) -> None:
        self.on = False
        self._pending.clear()
        if self._said_off:
            return
        self._said_off = True
        reason = str(exc) or type(exc).__name__
        self._state(Record(C.CLUSTER_STATE, time.time(), extra={
            "state": "off", "url": self.config.url, "node": self.config.node, "reason": reason}))
        self._say(f"the cluster view is off: Redis at {self.config.url} does not answer "
                  f"({reason}); node {self.config.node} judges alone (traffic is unaffected) "
                  f"until it does: start Redis, or point --cluster at the one the app uses")

    def _heard(self, message: dict[str, Any]) -> None:
        """One message off Redis. Whatever it holds, this returns: a message that is not
        understood is counted as a decode error and skipped, and the link reads on."""
        channel: Any = message.get("channel")
        channel = channel.decode(errors="replace") if isinstance(channel, bytes) else str(channel)
        data = message.get("data")
        if not isinstance(data, bytes):
            return  # a subscribe confirmation or the like: not a message
        try:
            if len(data) > MAX_MESSAGE:
                raise Malformed(f"larger than {MAX_MESSAGE // 1024} KiB (skipped unread)",
                                f"{len(data)} bytes")
            if channel == self.config.channel:
                self._peer(data)
                return
            sharded = message.get("type") in ("smessage", b"smessage")
            self._emitted(parse_sharded(data) if sharded else parse_adapter(data))
        except Malformed as exc:
            self._malformed(channel, data, exc.reason, exc.detail)
        except Exception as exc:  # a message must never end the link
            self._malformed(channel, data, "could not be read", type(exc).__name__)

    def _peer(self, data: bytes) -> None:
        msg = parse_peer(data)
        node = msg["node"][:64]
        if node == self.config.node:
            return
        if msg["kind"] == "d":
            self._fact(Record(C.CLUSTER_DELIVERED, self._clock(), nsp=msg.get("nsp"),
                              name=msg.get("name"), extra={
                                  "node": node,
                                  "digests": [str(d) for d in msg["d"][:C.MAX_DIGESTS]]}))
        else:
            self._fact(Record(C.CLUSTER_NODE, self._clock(), extra={
                "node": node, "clients": {str(k): v for k, v in
                                          list(msg["clients"].items())[:64]
                                          if isinstance(v, int) and not isinstance(v, bool)}}))

    def _malformed(self, channel: str, data: bytes, reason: str, detail: str) -> None:
        key = (channel[:120], reason)
        if key not in self.errors and len(self.errors) >= MAX_ERROR_KINDS:
            key = ("*", "other kinds")
        count = self.errors.get(key, 0) + 1
        self.errors[key] = count
        if count == 1:
            self._state(self._error_record(key, count, data, detail))

    def _error_record(self, key: tuple[str, str], count: int, data: bytes | None = None,
                      detail: str = "") -> Record:
        channel, reason = key
        extra: dict[str, Any] = {"layer": "cluster", "channel": channel, "reason": reason,
                                 "count": count, "node": self.config.node}
        if data is not None:
            extra["raw"] = base64.b64encode(data[:ERROR_RAW]).decode()
            if detail:
                extra["detail"] = detail
        else:
            extra["final"] = True  # the closing total of a kind already recorded
        return Record(model.DECODE_ERROR, self._clock(), size=len(data) if data else None,
                      extra=extra)

    def _tell_errors(self) -> None:
        """The totals of the kinds seen more than once (one record each), and one sentence."""
        if not self.errors:
            return
        for key, count in self.errors.items():
            if count > 1:
                self._state(self._error_record(key, count))
        total = sum(self.errors.values())
        kinds = "; ".join(f"{n} {reason} on {channel}"
                          for (channel, reason), n in list(self.errors.items())[:6])
        self._say(f"{total} message(s) on the cluster's Redis channels were not understood and "
                  f"were skipped ({kinds}); the cluster view read on without them")


def _collapse(pending: deque[dict[str, Any]]) -> list[dict[str, Any]]:
    """Take everything queued; one broadcast's deliveries (the same event to n clients, queued
    in a row) become one message: one delivery anywhere is what closes an expectation."""
    out: list[dict[str, Any]] = []
    while pending:
        message = pending.popleft()
        last = out[-1] if out else None
        if (last is not None and message["kind"] == "d" and last["kind"] == "d"
                and last["nsp"] == message["nsp"] and last["name"] == message["name"]
                and last["d"] == message["d"]):
            continue
        out.append(message)
    return out
