"""A passive RFC 6455 frame parser for one direction of a relayed WebSocket (sans-IO).

Frame layout (RFC 6455 section 5.2)::

    byte 0: FIN(1) RSV1(1) RSV2(1) RSV3(1) opcode(4)
    byte 1: MASK(1) payload length(7): 0-125, 126 -> 16-bit length follows, 127 -> 64-bit
    [extended length] [4-byte masking key if MASK] payload

Client frames are masked, server frames are not; the parser unmasks whichever it sees. Data
messages may be fragmented (opcode 1/2, then 0 continuations until FIN) with control frames
(8 close, 9 ping, 10 pong; at most 125 bytes, never fragmented) in between. With
permessage-deflate (RFC 7692) RSV1 on a message's first frame marks it compressed: the payload is
raw deflate with the trailing ``00 00 ff ff`` removed, inflated here with one inflater per
direction that is kept across messages unless that sender declared ``no_context_takeover``.

Payloads stream through: a frame's payload is consumed as it arrives, so memory stays bounded by
``message_limit`` however large the messages are. The parser only reads copies of forwarded bytes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from sio_sniffer.model.tap import Direction, TapError, TapEvent, WsControl, WsMessage
from sio_sniffer.transport.tap.errors import RAW_SNIPPET, TapParseError

OP_CONTINUATION = 0
OP_TEXT = 1
OP_BINARY = 2
OP_CLOSE = 8
OP_PING = 9
OP_PONG = 10
_DATA_OPCODES = (OP_TEXT, OP_BINARY)
_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)
_DEFLATE_TAIL = b"\x00\x00\xff\xff"
_INFLATE_STEP = 1 << 20


class WsTapError(TapParseError):
    """The frame stream cannot be followed any further (the bytes were forwarded all the same)."""


@dataclass(frozen=True, slots=True)
class Deflate:
    """permessage-deflate as the server accepted it in its 101 answer."""

    client_no_context_takeover: bool = False
    server_no_context_takeover: bool = False


def negotiated_deflate(extensions: str | None) -> Deflate | None:
    """The permessage-deflate the server accepted in ``Sec-WebSocket-Extensions``, if any.

    The server answers with at most one accepted offer per extension, e.g.
    ``permessage-deflate; server_no_context_takeover; client_max_window_bits=10``. Window sizes
    need no handling: an inflater with the largest window reads streams made with any smaller one.
    """
    if not extensions:
        return None
    for offer in extensions.split(","):
        name, *params = (part.strip().lower() for part in offer.split(";"))
        if name != "permessage-deflate":
            continue
        keys = {param.split("=", 1)[0].strip() for param in params}
        return Deflate(
            client_no_context_takeover="client_no_context_takeover" in keys,
            server_no_context_takeover="server_no_context_takeover" in keys,
        )
    return None


def unmask(payload: bytes, mask: bytes, phase: int) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask`` starting at mask byte ``phase`` (0-3)."""
    n = len(payload)
    if not n:
        return payload
    key = (mask[phase:] + mask[:phase]) * (n // 4 + 1)
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key[:n], "little")).to_bytes(
        n, "little"
    )


class WsFrameParser:
    """One direction of a WebSocket: ``feed(data, ts)`` returns completed messages and controls.

    Problems the parser can step over (an oversized message, a malformed close payload) come back
    as :class:`TapError` events; a stream it cannot follow raises :class:`WsTapError`.
    """

    def __init__(
        self, conn: str, dir: Direction, deflate: Deflate | None, message_limit: int
    ) -> None:
        self.conn = conn
        self.dir = dir
        self._limit = message_limit
        self._deflate = deflate is not None
        # each direction is compressed by its sender, who may have declared it resets per message
        self._reset_context = deflate is not None and (
            deflate.client_no_context_takeover if dir == "in"
            else deflate.server_no_context_takeover
        )
        self._inflater = zlib.decompressobj(-zlib.MAX_WBITS) if deflate else None
        self._pending = b""
        self._offset = 0  # stream offset of the first byte of _pending
        # the frame being read
        self._in_payload = False
        self._opcode = 0
        self._fin = False
        self._mask: bytes | None = None
        self._phase = 0
        self._remaining = 0
        self._frame_start = 0
        self._control: list[bytes] = []
        # the data message being assembled
        self._msg_opcode: int | None = None
        self._msg_compressed = False
        self._msg_parts: list[bytes] = []
        self._msg_size = 0
        self._msg_wire = 0
        self._msg_over = False

    def feed(self, data: bytes, ts: float) -> list[TapEvent]:
        """Take a copy of bytes that passed; return the messages and controls they complete."""
        buf = self._pending + data if self._pending else data
        base = self._offset
        events: list[TapEvent] = []
        try:
            pos = self._parse(buf, base, ts, events)
        except WsTapError as exc:
            exc.events = events
            raise
        self._pending = buf[pos:]
        self._offset = base + pos
        return events

    def _parse(self, buf: bytes, base: int, ts: float, events: list[TapEvent]) -> int:
        """Consume frames from ``buf``; return how far it got."""
        pos = 0
        end = len(buf)
        conn, dir, limit = self.conn, self.dir, self._limit
        while pos < end:
            if not self._in_payload and self._msg_opcode is None and end - pos >= 2:
                # fast path for the common frame: a whole, final, uncompressed text or binary
                # message of under 64 KiB that is all in this read
                b0, b1 = buf[pos], buf[pos + 1]
                length = b1 & 0x7F
                if (b0 == 0x81 or b0 == 0x82) and length <= 126:
                    at = pos + 2
                    if length == 126 and end - pos >= 4:
                        length = (buf[at] << 8) | buf[at + 1]
                        at += 2
                    stop = at + (4 if b1 & 0x80 else 0) + length
                    if length != 126 and stop <= end and length <= limit:
                        if b1 & 0x80:
                            payload = unmask(buf[at + 4:stop], buf[at:at + 4], 0)
                        else:
                            payload = buf[at:stop]
                        events.append(WsMessage(conn=conn, ts=ts, dir=dir, opcode=b0 & 0x0F,
                                                payload=payload, wire_size=stop - pos))
                        pos = stop
                        continue
            if not self._in_payload:
                header_end = self._read_header(buf, pos, base)
                if header_end < 0:
                    break
                self._msg_wire += header_end - pos if self._opcode < 8 else 0
                pos = header_end
                if self._remaining:
                    continue
            else:
                n = min(self._remaining, end - pos)
                chunk = buf[pos:pos + n]
                if self._mask is not None:
                    chunk = unmask(chunk, self._mask, self._phase)
                    self._phase = (self._phase + n) % 4
                pos += n
                self._remaining -= n
                self._payload(chunk, base + pos)
                if self._remaining:
                    continue
            self._in_payload = False
            self._frame_done(ts, events, base + pos)
        return pos

    def _read_header(self, buf: bytes, pos: int, base: int) -> int:
        """Parse a frame header at ``pos``; its end, or -1 when it is not all there yet."""
        avail = len(buf) - pos
        if avail < 2:
            return -1
        b0, b1 = buf[pos], buf[pos + 1]
        length = b1 & 0x7F
        at = pos + 2
        if length == 126:
            if avail < 4:
                return -1
            length = int.from_bytes(buf[at:at + 2], "big")
            at += 2
        elif length == 127:
            if avail < 10:
                return -1
            length = int.from_bytes(buf[at:at + 8], "big")
            at += 8
            if length >> 63:
                raise self._error("64-bit payload length with the top bit set", buf, pos, base)
        masked = bool(b1 & 0x80)
        if masked:
            if len(buf) < at + 4:
                return -1
            self._mask = buf[at:at + 4]
            at += 4
        else:
            self._mask = None
        opcode = b0 & 0x0F
        fin = bool(b0 & 0x80)
        rsv1 = bool(b0 & 0x40)
        if b0 & 0x30:
            raise self._error("RSV2/RSV3 set without an extension that defines them", buf, pos,
                              base)
        if opcode in _CONTROL_OPCODES:
            if not fin or length > 125:
                raise self._error(
                    f"control frame {opcode} fragmented or longer than 125 bytes", buf, pos, base
                )
            if rsv1:
                raise self._error("RSV1 set on a control frame", buf, pos, base)
            self._control = []
        elif opcode in _DATA_OPCODES:
            if self._msg_opcode is not None:
                raise self._error("new data frame inside a fragmented message", buf, pos, base)
            if rsv1 and not self._deflate:
                raise self._error("RSV1 set but permessage-deflate was not negotiated", buf, pos,
                                  base)
            self._start_message(opcode, rsv1)
        elif opcode == OP_CONTINUATION:
            if self._msg_opcode is None:
                raise self._error("continuation frame without a message to continue", buf, pos,
                                  base)
            if rsv1:
                raise self._error("RSV1 set on a continuation frame", buf, pos, base)
        else:
            raise self._error(f"reserved opcode {opcode}", buf, pos, base)
        self._opcode = opcode
        self._fin = fin
        self._phase = 0
        self._remaining = length
        self._in_payload = True
        if opcode < 8:
            self._msg_wire += length
        return at

    def _error(self, reason: str, buf: bytes, pos: int, base: int) -> WsTapError:
        return WsTapError(reason, bytes(buf[pos:pos + RAW_SNIPPET]), base + pos)

    def _start_message(self, opcode: int, compressed: bool) -> None:
        self._msg_opcode = opcode
        self._msg_compressed = compressed
        self._msg_parts = []
        self._msg_size = 0
        self._msg_wire = 0
        self._msg_over = False

    def _payload(self, chunk: bytes, offset: int) -> None:
        if self._opcode >= 8:
            self._control.append(chunk)
        elif self._msg_compressed:
            self._inflate(chunk, offset)
        else:
            self._keep(chunk)

    def _keep(self, chunk: bytes) -> None:
        if self._msg_over:
            return
        if self._msg_size + len(chunk) > self._limit:
            self._msg_over = True
            self._msg_parts = []
            return
        self._msg_parts.append(chunk)
        self._msg_size += len(chunk)

    def _inflate(self, chunk: bytes, offset: int) -> None:
        inflater = self._inflater
        assert inflater is not None
        try:
            while chunk:
                out = inflater.decompress(chunk, _INFLATE_STEP)
                self._keep(out)
                chunk = inflater.unconsumed_tail
                if inflater.eof:
                    # the sender ended its deflate stream (BFINAL); the next message starts anew
                    self._inflater = inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        except zlib.error as exc:
            raise WsTapError(f"permessage-deflate data does not inflate: {exc}", b"",
                             offset) from exc

    def _frame_done(self, ts: float, events: list[TapEvent], offset: int) -> None:
        if self._opcode >= 8:
            events.append(self._control_event(b"".join(self._control), ts, offset))
            return
        if not self._fin:
            return
        if self._msg_compressed:
            self._inflate(_DEFLATE_TAIL, offset)
            if self._reset_context:
                self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        opcode = self._msg_opcode
        assert opcode is not None
        self._msg_opcode = None
        if self._msg_over:
            events.append(TapError(
                conn=self.conn, ts=ts, dir=self.dir, layer="websocket",
                reason=f"message larger than the tap limit of {self._limit} bytes (not decoded)",
                raw=b"", offset=offset,
            ))
        else:
            events.append(WsMessage(
                conn=self.conn, ts=ts, dir=self.dir, opcode=opcode,
                payload=b"".join(self._msg_parts), wire_size=self._msg_wire,
            ))
        self._msg_parts = []

    def _control_event(self, payload: bytes, ts: float, offset: int) -> TapEvent:
        if self._opcode != OP_CLOSE or not payload:
            return WsControl(conn=self.conn, ts=ts, dir=self.dir, opcode=self._opcode,
                             payload=payload)
        if len(payload) == 1:
            return TapError(conn=self.conn, ts=ts, dir=self.dir, layer="websocket",
                            reason="close frame with a 1-byte payload", raw=payload, offset=offset)
        return WsControl(
            conn=self.conn, ts=ts, dir=self.dir, opcode=OP_CLOSE, payload=payload,
            close_code=int.from_bytes(payload[:2], "big"),
            close_reason=payload[2:].decode("utf-8", "replace"),
        )
