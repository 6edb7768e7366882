"""Helpers for the codec tests: the Node vector script and the JSON form of its packets."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from sio_sniffer.codec import EioPacket, EioType, SioPacket, SioType
from tests.paths import NODE_DIR

VECTORS_JS = NODE_DIR / "vectors.js"


def run_node(mode: str, stdin: Any = None) -> Any:
    """Run tests/node/vectors.js in ``mode`` and return its JSON output."""
    env = dict(os.environ, NODE_PATH=str(NODE_DIR / "node_modules"))
    proc = subprocess.run(
        ["node", str(VECTORS_JS), mode],
        input=None if stdin is None else json.dumps(stdin).encode(),
        capture_output=True, check=True, timeout=60, env=env,
    )
    return json.loads(proc.stdout)


def from_json(value: Any) -> Any:
    """Turn the script's ``{"$bin": hex}`` markers back into bytes."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"$bin"}:
            return bytes.fromhex(value["$bin"])
        return {k: from_json(v) for k, v in value.items()}
    return value


def to_json(value: Any) -> Any:
    """Bytes as ``{"$bin": hex}`` for the Node script."""
    if isinstance(value, (bytes, bytearray)):
        return {"$bin": bytes(value).hex()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def message(m: dict[str, str]) -> str | bytes:
    """An encoded message of the script: ``{"text": ...}`` or ``{"bin": hex}``."""
    return m["text"] if "text" in m else bytes.fromhex(m["bin"])


def to_message(m: str | bytes) -> dict[str, str]:
    return {"text": m} if isinstance(m, str) else {"bin": m.hex()}


def eio_packet(obj: dict[str, Any]) -> EioPacket:
    """The script's ``{type, data?}`` as an EioPacket."""
    data = from_json(obj.get("data", ""))
    return EioPacket(EioType(obj["type"]), data)


def sio_packet(obj: dict[str, Any], text_parser: bool = True) -> SioPacket:
    """The script's socket.io packet as the SioPacket our decoder should produce.

    With the text parser an EVENT/ACK carrying bytes travels as BINARY_EVENT/BINARY_ACK and
    announces its attachment count; the msgpack parser keeps the type and sends bytes inline.
    """
    data = from_json(obj.get("data"))
    ptype = SioType(obj["type"])
    attachments = 0
    if text_parser and has_bytes(data):
        attachments = count_bytes(data)
        ptype = SioType.BINARY_EVENT if ptype == SioType.EVENT else SioType.BINARY_ACK
    return SioPacket(ptype, obj["nsp"], data, obj.get("id"), attachments)


def has_bytes(value: Any) -> bool:
    return count_bytes(value) > 0


def count_bytes(value: Any) -> int:
    if isinstance(value, bytes):
        return 1
    if isinstance(value, list):
        return sum(count_bytes(v) for v in value)
    if isinstance(value, dict):
        return sum(count_bytes(v) for v in value.values())
    return 0
