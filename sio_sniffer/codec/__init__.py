"""Sans-IO codec: Engine.IO v3/v4 packets and payloads, Socket.IO v4/v5 packets (text and
msgpack), and a per-session stream decoder. Pure functions and small state machines: no I/O,
no clocks, no logging. Bad input becomes :class:`DecodeError` items (or :class:`CodecError` from
the single-shot functions), never a crash."""

from sio_sniffer.codec.engineio import (
    EioPacket,
    EioType,
    decode_eio_packet,
    decode_polling_payload,
    encode_eio_packet,
    encode_polling_payload,
    encode_xhr2_payload,
)
from sio_sniffer.codec.errors import CodecError, DecodeError
from sio_sniffer.codec.socketio import (
    SioDecoder,
    SioPacket,
    SioType,
    decode_sio_packet,
    encode_sio_packet,
    split_sio_text,
)
from sio_sniffer.codec.stream import EioItem, ErrorItem, Item, SessionDecoder, SioItem

__all__ = [
    "CodecError",
    "DecodeError",
    "EioItem",
    "EioPacket",
    "EioType",
    "ErrorItem",
    "Item",
    "SessionDecoder",
    "SioDecoder",
    "SioItem",
    "SioPacket",
    "SioType",
    "decode_eio_packet",
    "decode_polling_payload",
    "decode_sio_packet",
    "encode_eio_packet",
    "encode_polling_payload",
    "encode_sio_packet",
    "encode_xhr2_payload",
    "split_sio_text",
]
