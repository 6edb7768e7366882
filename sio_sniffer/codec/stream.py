"""Follow one Engine.IO session, both directions, across polling and WebSocket.

The caller (the pipeline) hands over what the tap saw, already split per transport: each polling
body that is an Engine.IO payload (GET responses, POST requests; not python-engineio's ``OK``
answers to POSTs) and each WebSocket message of the session's socket. The decoder yields items
tagged with direction (``in`` = client→server, ``out`` = server→client) and transport:

- :class:`EioItem` for every Engine.IO packet other than a MESSAGE (open, ping, pong, upgrade,
  noop, close), and for MESSAGEs too when the session is plain Engine.IO (``socketio=False``, or
  found so by ``socketio=None``: see :meth:`SessionDecoder._socketio`);
- :class:`SioItem` for every Socket.IO packet, binary attachments reassembled;
- :class:`ErrorItem` for anything that did not decode.

Session lifecycle, as the spec draws it (v4; v3 differs only in who pings)::

    out  0{"sid":…,"upgrades":["websocket"],"pingInterval":…,"pingTimeout":…,"maxPayload":…}
    ...  polling: GET bodies out, POST bodies in, packets of both kinds
    in   2probe          (on the new WebSocket)         state: probing
    out  3probe          (on the WebSocket)             state: probed
    out  6               (answers the pending GET)
    in   5               (on the WebSocket)             state: upgraded
    ...  WebSocket only
    either 1 (close), or the transport simply ends      state: closed
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson

from sio_sniffer.codec.engineio import EioPacket, EioType, decode_eio_packet, decode_polling_payload
from sio_sniffer.codec.errors import CodecError, DecodeError
from sio_sniffer.codec.socketio import SioDecoder, SioPacket, SioType

Direction = Literal["in", "out"]
Transport = Literal["polling", "websocket"]
POLLING: Transport = "polling"
WEBSOCKET: Transport = "websocket"


@dataclass(frozen=True, slots=True)
class EioItem:
    """An Engine.IO packet seen on the session."""

    dir: Direction
    transport: Transport
    packet: EioPacket


@dataclass(frozen=True, slots=True)
class SioItem:
    """A complete Socket.IO packet seen on the session."""

    dir: Direction
    transport: Transport
    packet: SioPacket


@dataclass(frozen=True, slots=True)
class ErrorItem:
    """Input that did not decode, with the reason, the raw bytes and the offset."""

    dir: Direction
    transport: Transport
    error: DecodeError


Item = EioItem | SioItem | ErrorItem

def _sio_item(dir: Direction, packet: SioPacket) -> SioItem:
    """``SioItem(dir, "websocket", packet)`` for the hot path, without the frozen-dataclass
    ``__init__`` (one ``object.__setattr__`` call per field)."""
    item = _object_new(SioItem)
    _set_dir(item, dir)
    _set_transport(item, WEBSOCKET)
    _set_packet(item, packet)
    return item


_object_new = object.__new__
_set_dir = SioItem.__dict__["dir"].__set__
_set_transport = SioItem.__dict__["transport"].__set__
_set_packet = SioItem.__dict__["packet"].__set__

# Upgrade states: (state, direction, packet as text, transport) -> next state. Anything not
# listed leaves the state alone: the decoder records what it sees, it does not police the peers.
NEW, OPEN, PROBING, PROBED, UPGRADED, CLOSED = (
    "new", "open", "probing", "probed", "upgraded", "closed")
_TRANSITIONS: dict[tuple[str, str, str, str], str] = {
    (NEW, "out", "0", POLLING): OPEN,
    (NEW, "out", "0", WEBSOCKET): OPEN,
    (OPEN, "in", "2probe", WEBSOCKET): PROBING,
    (PROBING, "out", "3probe", WEBSOCKET): PROBED,
    (PROBING, "in", "5", WEBSOCKET): UPGRADED,
    (PROBED, "in", "5", WEBSOCKET): UPGRADED,
}
_CONTROL = (EioType.PING, EioType.PONG, EioType.UPGRADE)


class SharedFrames:
    """The items of recent server-to-client text frames, shared by the sessions of one
    pipeline: a broadcast reaches every client as the same bytes, and is decoded once. Items
    and the packets in them are never changed after decoding, so sharing them is safe.

    ``size`` must cover the frames of one broadcast interleaved with others: the relay reads
    each client's connection a chunk (up to a few hundred frames) at a time. Frames over
    ``max_frame`` bytes are not kept, so the table holds at most ``size * max_frame`` bytes of
    frames (and their decoded form)."""

    def __init__(self, size: int = 1024, max_frame: int = 4096) -> None:
        self._size = size
        self._max_frame = max_frame
        self._items: dict[bytes, list[Item]] = {}

    def get(self, frame: bytes) -> list[Item] | None:
        # the length first: hashing a large frame that cannot be here would cost more than
        # the lookup saves
        return self._items.get(frame) if len(frame) <= self._max_frame else None

    def put(self, frame: bytes, items: list[Item]) -> None:
        if len(frame) > self._max_frame:
            return
        known = self._items
        known[frame] = items
        if len(known) > self._size:
            del known[next(iter(known))]


class SessionDecoder:
    """Decodes everything seen on one Engine.IO session; never raises.

    ``sid`` and ``open_info`` come from the OPEN packet; ``state`` is one of new, open, probing,
    probed, upgraded, closed; ``upgraded`` turns True at the client's UPGRADE (``5``);
    ``msgpack`` is True once either direction was seen using the msgpack parser. ``socketio``
    says whether MESSAGEs carry Socket.IO packets; None decides it at the session's first
    MESSAGE (a plain engine.io app carries its own data there, and every message of it would
    otherwise be a decode error).
    """

    def __init__(self, eio: int = 4, msgpack: bool | None = None, socketio: bool | None = True,
                 shared: SharedFrames | None = None) -> None:
        self.eio = eio
        self.socketio = socketio
        self._shared = shared
        self.sid: str | None = None
        self.open_info: dict[str, Any] = {}
        self.state = NEW
        self.upgraded = False
        self._transport: Transport = POLLING
        self._decoders: dict[str, SioDecoder] = {"in": SioDecoder(msgpack),
                                                 "out": SioDecoder(msgpack)}

    @property
    def msgpack(self) -> bool | None:
        """True if the session uses the msgpack parser, False if known not to, None if unknown."""
        flags = (self._decoders["in"].msgpack, self._decoders["out"].msgpack)
        if True in flags:
            return True
        return False if False in flags else None

    def polling(self, dir: Direction, body: bytes, content_type: str | None = None) -> list[Item]:
        """Decode one polling body: a GET response (``out``) or a POST request (``in``)."""
        out: list[Item] = []
        for pkt in decode_polling_payload(body, self.eio, content_type):
            if isinstance(pkt, DecodeError):
                out.append(ErrorItem(dir, POLLING, pkt))
            else:
                self._packet(dir, POLLING, pkt, out)
        return out

    def websocket(self, dir: Direction, payload: bytes, text: bool) -> list[Item]:
        """Decode one WebSocket message (``text`` for a text frame, else binary)."""
        if text:
            if payload.startswith(b"4") and self.socketio:
                self._transport = WEBSOCKET
                decoder = self._decoders[dir]
                # A text packet with no binary packet pending decodes the same in any session:
                # a broadcast, the same bytes to every client, is decoded once.
                shared = self._shared if dir == "out" and decoder.pending_attachments == 0 \
                    else None
                if shared is not None:
                    known = shared.get(payload)
                    if known is not None:
                        return known
                items: list[Item] = [
                    _sio_item(dir, p) if type(p) is SioPacket
                    else ErrorItem(dir, WEBSOCKET, p)  # type: ignore[arg-type]
                    for p in decoder.feed_utf8(payload, 1)]
                if shared is not None and decoder.pending_attachments == 0:
                    shared.put(payload, items)
                return items
            try:
                data: str | bytes = payload.decode("utf-8")
            except UnicodeDecodeError as exc:
                return [ErrorItem(dir, WEBSOCKET, DecodeError(
                    f"text message is not valid UTF-8 ({exc.reason})", payload, exc.start,
                    "engineio"))]
        else:
            data = payload
        try:
            pkt = decode_eio_packet(data, self.eio)
        except CodecError as exc:
            return [ErrorItem(dir, WEBSOCKET, exc.error)]
        out: list[Item] = []
        self._packet(dir, WEBSOCKET, pkt, out)
        return out

    def close(self) -> list[Item]:
        """The session ended (transport gone): report binary packets left incomplete."""
        out: list[Item] = []
        for dir, decoder in self._decoders.items():
            out.extend(ErrorItem(dir, self._transport, e)  # type: ignore[arg-type]
                       for e in decoder.flush() if isinstance(e, DecodeError))
        self.state = CLOSED
        return out

    def _advance(self, dir: Direction, transport: Transport, key: str) -> None:
        nxt = _TRANSITIONS.get((self.state, dir, key, transport))
        if nxt is not None:
            self.state = nxt
            if nxt == UPGRADED:
                self.upgraded = True

    def _packet(self, dir: Direction, transport: Transport, pkt: EioPacket,
                out: list[Item]) -> None:
        self._transport = transport
        ptype = pkt.type
        if ptype == EioType.MESSAGE and self.socketio is not False:
            packets = self._decoders[dir].feed(pkt.data)
            if self.socketio is None:
                self.socketio = self._socketio(packets)
            if self.socketio:
                for p in packets:
                    if isinstance(p, SioPacket):
                        out.append(SioItem(dir, transport, p))
                    else:
                        out.append(ErrorItem(dir, transport, p))
                return
        out.append(EioItem(dir, transport, pkt))
        if ptype == EioType.OPEN:
            self._open(dir, transport, pkt, out)
        elif ptype == EioType.CLOSE:
            self.state = CLOSED
        elif ptype in _CONTROL and isinstance(pkt.data, str):
            self._advance(dir, transport, f"{int(ptype)}{pkt.data}")

    def _socketio(self, first: list[SioPacket | DecodeError]) -> bool:
        """Whether a session is Socket.IO, from what its first MESSAGE decoded to. Seen from
        its OPEN, a Socket.IO session starts with a CONNECT (the v5 client's, or the v4
        server's for ``/``); a plain Engine.IO message that happens to parse as some other
        Socket.IO packet (``2["x"]``) must not make its session Socket.IO. Joined mid-session
        (opened before the proxy watched), its start is unknown: it stays Socket.IO, whose
        garbage is then reported rather than taken for an app's own data."""
        if not self.open_info:
            return True
        return bool(first) and isinstance(first[0], SioPacket) and \
            first[0].type == SioType.CONNECT

    def _open(self, dir: Direction, transport: Transport, pkt: EioPacket,
              out: list[Item]) -> None:
        info: Any = None
        if isinstance(pkt.data, str):
            try:
                info = orjson.loads(pkt.data)
            except orjson.JSONDecodeError:
                info = None
        if type(info) is not dict:
            raw = pkt.data if isinstance(pkt.data, bytes) else pkt.data.encode("utf-8", "replace")
            out.append(ErrorItem(dir, transport, DecodeError(
                "open packet does not carry a JSON object", b"0" + raw, 1, "engineio")))
            return
        self.open_info = info
        sid = info.get("sid")
        self.sid = sid if isinstance(sid, str) else None
        self._advance(dir, transport, "0")
