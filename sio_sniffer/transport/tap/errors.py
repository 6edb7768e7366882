"""The one error type of the tap parsers: input they cannot follow (it was forwarded all the
same). It carries what the tap reports in its TapError event."""

from __future__ import annotations

from sio_sniffer.model.tap import TapEvent

# How much of the offending input a TapError keeps: enough to see what was wrong.
RAW_SNIPPET = 256


class TapParseError(Exception):
    def __init__(self, reason: str, raw: bytes, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.raw = raw
        self.offset = offset
        self.events: list[TapEvent] = []  # what the same input completed before the error
