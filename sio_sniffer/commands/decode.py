"""``sio-sniffer decode``: decode Engine.IO/Socket.IO frames or polling bodies by hand.

Input is one message per argument, or one per line of ``-f FILE`` or of standard input (read
when a MESSAGE is ``-``, with ``-f -``, or, as ``jq`` does, when no MESSAGE is given and stdin is
not a terminal); with ``--polling`` each argument, or the whole file, is one polling body. All
messages go through one session decoder, so the attachments that follow a binary packet are put
back into it.
Prints one JSON object per packet, or per decode error; exits 1 if anything failed to decode.

    sio-sniffer decode '42["chat",{"text":"hi"}]'
    sio-sniffer decode --polling $'0{"sid":"x"}\\x1e42["a"]'
    sio-sniffer decode '451-["up",{"_placeholder":true,"num":0}]' --hex-next 0102
    printf '%s' 01020304 | sio-sniffer decode --hex
"""

from __future__ import annotations

import argparse
import base64
import binascii
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any, TextIO

import orjson

from sio_sniffer.codec import EioItem, ErrorItem, Item, SessionDecoder, SioItem

_V3_PAYLOAD = re.compile(rb"\d{1,10}:")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``sio-sniffer decode``."""
    parser.add_argument("messages", nargs="*", metavar="MESSAGE",
                        help="a WebSocket message or polling body (text unless --hex/--base64); "
                             "'-' reads standard input, as does no MESSAGE when stdin is a pipe")
    parser.add_argument("-f", "--file", metavar="FILE",
                        help="read input from FILE ('-' for stdin); one message per line unless "
                             "--polling (then the whole file is one body)")
    parser.add_argument("--eio", type=int, choices=(3, 4), default=4,
                        help="Engine.IO protocol revision (default 4)")
    parser.add_argument("--msgpack", action="store_true",
                        help="the peers use socket.io-msgpack-parser (detected anyway when "
                             "a binary message is a msgpack map)")
    encoding = parser.add_mutually_exclusive_group()
    encoding.add_argument("--hex", action="store_true",
                          help="input is hex-encoded binary (binary frames, XHR2 bodies)")
    encoding.add_argument("--base64", action="store_true", help="input is base64-encoded binary")
    parser.add_argument("--hex-next", action="append", default=[], metavar="HEX",
                        help="a binary WebSocket message (hex) after the text ones, e.g. the "
                             "attachments of a binary packet; repeatable")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--polling", action="store_true",
                      help="input is a polling body (payload), not a WebSocket message")
    mode.add_argument("--websocket", action="store_true",
                      help="input is WebSocket messages even if it looks like a payload")
    parser.add_argument("--dir", choices=("in", "out"), default="in",
                        help="direction to tag packets with: in = client→server (default)")
    parser.add_argument("--engineio", action="store_true",
                        help="plain Engine.IO: print messages as they are, not as Socket.IO")
    parser.add_argument("--bytes", choices=("hex", "base64"), default="hex", dest="bytes_as",
                        help="how to print binary data and attachments (default hex)")


def run(args: argparse.Namespace) -> int:
    """Decode the input, print JSON lines; 0 if everything decoded, 1 if not, 2 on bad input."""
    try:
        inputs = list(_inputs(args))
    except (OSError, ValueError) as exc:
        print(f"sio-sniffer decode: {exc}", file=sys.stderr)
        return 2
    if not inputs:
        print("sio-sniffer decode: no input: give MESSAGE arguments, -f FILE, or pipe the "
              "frames in ('... | sio-sniffer decode')", file=sys.stderr)
        return 2
    decoder = SessionDecoder(eio=args.eio, msgpack=True if args.msgpack else None,
                             socketio=not args.engineio)
    render = _bytes_hex if args.bytes_as == "hex" else _bytes_base64
    failed = False
    out = sys.stdout
    for data, binary in inputs:
        if args.polling or (not args.websocket and _looks_like_payload(data, binary, args.eio)):
            items = decoder.polling(args.dir, data)
        else:
            items = decoder.websocket(args.dir, data, text=not binary)
        for item in items:
            failed = failed or isinstance(item, ErrorItem)
            _print(out, item, render)
    for item in decoder.close():
        failed = True
        _print(out, item, render)
    return 1 if failed else 0


def _print(out: TextIO, item: Item, render: Callable[[Any], Any]) -> None:
    out.write(orjson.dumps(item_json(item), default=render).decode())
    out.write("\n")


def _inputs(args: argparse.Namespace) -> Iterator[tuple[bytes, bool]]:
    """(bytes, is_binary) for each message or body, in order."""
    binary = bool(args.hex or args.base64)
    raw: list[str] = []
    for value in args.messages:
        raw.extend(_split(_read("-"), args.polling) if value == "-" else [value])
    if args.file is not None:
        raw.extend(_split(_read(args.file), args.polling))
    elif not args.messages and not sys.stdin.isatty():
        # Piped in with nothing else given, as `jq` reads it; a terminal is never waited on.
        raw.extend(_split(_read("-"), args.polling))
    for value in raw:
        yield (_unbinary(value, args.base64) if binary else value.encode("utf-8"), binary)
    for value in args.hex_next:
        yield _unbinary(value, False), True


def _split(text: str, polling: bool) -> list[str]:
    """A file's messages: one per line, or the whole of it as one polling body.

    Only newlines end a line: ``str.splitlines`` would also split at ``\\x1e``, the separator
    of the packets of a v4 polling body, and so decode a body as separate WebSocket messages.
    """
    if polling:
        return [text[:-1] if text.endswith("\n") else text]
    return [line.removesuffix("\r") for line in text.split("\n") if line.removesuffix("\r")]


def _read(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    with open(path, encoding="utf-8", errors="surrogateescape") as fh:
        return fh.read()


def _unbinary(value: str, b64: bool) -> bytes:
    try:
        if b64:
            return base64.b64decode(value.strip(), validate=True)
        return bytes.fromhex(value.strip())
    except (binascii.Error, ValueError):
        kind = "base64" if b64 else "hex"
        raise ValueError(f"input is not valid {kind}: {value[:40]!r}") from None


def _looks_like_payload(data: bytes, binary: bool, eio: int) -> bool:
    """A body rather than a single message: several ``\\x1e``-joined packets, a v3
    length-prefixed payload, or a v3 XHR2 binary payload (marker byte 0 or 1)."""
    if eio == 3:
        if binary:
            return bool(data) and data[0] in (0, 1)
        return _V3_PAYLOAD.match(data) is not None
    return not binary and b"\x1e" in data


def item_json(item: Item) -> dict[str, Any]:
    """The JSON form printed for one item (bytes stay bytes; the printer renders them)."""
    out: dict[str, Any] = {"dir": item.dir, "transport": item.transport}
    if isinstance(item, ErrorItem):
        err = item.error
        out.update(error=err.reason, layer=err.layer, offset=err.offset)
        try:
            out["raw_text"] = err.raw.decode("utf-8")
        except UnicodeDecodeError:
            out["raw"] = err.raw
        return out
    if isinstance(item, EioItem):
        out["eio_type"] = item.packet.type.name
        if item.packet.data:
            out["data"] = item.packet.data
        return out
    assert isinstance(item, SioItem)
    pkt = item.packet
    out.update(eio_type="MESSAGE", sio_type=pkt.type.name, namespace=pkt.namespace)
    if pkt.id is not None:
        out["ack_id"] = pkt.id
    if pkt.name is not None:
        out["event"] = pkt.name
    out["args"] = pkt.args
    found: list[bytes] = []
    _collect_bytes(pkt.data, found)
    if found:
        out["attachments"] = found
    if pkt.query is not None:
        out["query"] = pkt.query
    return out


def _collect_bytes(value: Any, found: list[bytes]) -> None:
    if isinstance(value, bytes):
        found.append(value)
    elif isinstance(value, list):
        for v in value:
            _collect_bytes(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            _collect_bytes(v, found)


def _bytes_hex(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"hex": bytes(value).hex()}
    return repr(value)


def _bytes_base64(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return {"base64": base64.b64encode(value).decode("ascii")}
    return repr(value)
