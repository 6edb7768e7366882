"""What the codec says about input it cannot decode.

A sniffer observes traffic it did not produce, so malformed input is an observation, not a bug:
decoders that follow a stream hand back a :class:`DecodeError` item in place of the packet and
carry on. The single-shot functions raise :class:`CodecError`, which carries the same item.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DecodeError:
    """Input that could not be decoded: why, the bytes concerned and where it went wrong.

    ``raw`` holds the bytes that could not be decoded: one packet or message, or the rest of a
    polling payload whose framing broke. ``offset`` is the byte position of the problem in the
    input the decoder was handed (for a packet inside a polling body, its position in the body).
    ``layer`` is ``"engineio"`` (packet or payload framing) or ``"socketio"`` (the packet inside
    an Engine.IO message, or attachment reassembly).
    """

    reason: str
    raw: bytes
    offset: int
    layer: str


class CodecError(Exception):
    """Raised by the single-shot decoders; ``.error`` is the :class:`DecodeError` describing it."""

    def __init__(self, error: DecodeError) -> None:
        super().__init__(f"{error.reason} (offset {error.offset})")
        self.error = error
