"""``--pretty``: the JSON log's lines rendered for a person at a terminal.

The same dicts as the JSON log, so nothing is shown here that the log does not hold: values are
written as JSON (``null``, ``true``, quoted strings where a bare word would mislead), a flag is
coloured by its severity (red problem, yellow warning, cyan info) with its cause and fix on lines
of their own, and the summary is spread over one line per section. Colour follows the usual
conventions: ``NO_COLOR`` turns it off, ``FORCE_COLOR`` on, otherwise only on a terminal.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from typing import IO, Any

import orjson

from sio_sniffer import model
from sio_sniffer.model import flags as F

_RESET = "\x1b[0m"
_STYLES = {F.PROBLEM: "\x1b[1;31m", F.WARNING: "\x1b[1;33m", F.INFO: "\x1b[1;36m"}
_DIM = "\x1b[2m"
_BOLD = "\x1b[1m"
_EVENT_WIDTH = 18
_INDENT = " " * 13  # under the event name, past the HH:MM:SS.mmm stamp
# A flag's own sentences, written under its header line rather than in it.
_FLAG_TEXT = (("cause", "cause"), ("hint", "fix"))
_FLAG_HEADER_SKIP = {"flag", "severity", "cause", "hint"}


def colour_wanted(stream: IO[bytes]) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def value_text(value: Any) -> str:
    """A value as JSON, except a string that reads unambiguously as a bare word."""
    if isinstance(value, str):
        if value and not any(c.isspace() or c in "\"=\\" for c in value):
            return value
        return orjson.dumps(value).decode()
    return orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()


def _pairs(fields: Mapping[str, Any], skip_empty: bool = False) -> str:
    return " ".join(f"{key}={value_text(value)}" for key, value in fields.items()
                    if value is not None and not (skip_empty and value in ({}, [])))


class PrettyRenderer:
    """A structlog renderer: the event dict → one or more lines of text."""

    def __init__(self, colours: bool) -> None:
        self._colours = colours

    def _paint(self, style: str, text: str) -> str:
        return f"{style}{text}{_RESET}" if self._colours and style else text

    def __call__(self, _logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        kind = event.pop("event", name)
        ts = str(event.pop("ts", ""))
        stamp = self._paint(_DIM, ts[11:23] if len(ts) >= 23 else ts.ljust(12))
        if kind == model.FLAG:
            return self._flag(stamp, event)
        if kind == model.SUMMARY:
            return self._summary(stamp, event)
        head = self._paint(_BOLD, str(kind).ljust(_EVENT_WIDTH))
        return f"{stamp} {head} {_pairs(event)}".rstrip()

    def _flag(self, stamp: str, event: MutableMapping[str, Any]) -> str:
        style = _STYLES.get(str(event.get("severity")), _STYLES[F.WARNING])
        title = f"⚑ {event.get('flag', 'flag')}".ljust(_EVENT_WIDTH)
        header = _pairs({k: v for k, v in event.items() if k not in _FLAG_HEADER_SKIP})
        lines = [f"{stamp} {self._paint(style, title)} {header}".rstrip()]
        for key, label in _FLAG_TEXT:
            if event.get(key):
                lines.append(f"{_INDENT}{self._paint(style, label + ':')} {event[key]}")
        return "\n".join(lines)

    def _summary(self, stamp: str, event: MutableMapping[str, Any]) -> str:
        lines = [f"{stamp} {self._paint(_BOLD, 'summary')}"]
        scalars = {k: v for k, v in event.items() if not isinstance(v, (dict, list))}
        if scalars:
            lines.append(f"{_INDENT}{_pairs(scalars)}")
        for key, value in event.items():
            if key in scalars or not value:
                continue  # an empty section says nothing
            label = self._paint(_BOLD, key + ":")
            if isinstance(value, dict):
                lines.append(f"{_INDENT}{label} {_pairs(value, skip_empty=True)}")
            else:  # a list: one item a line (notes are sentences, hooks are records)
                lines.extend(f"{_INDENT}{label} "
                             f"{item if isinstance(item, str) else value_text(item)}"
                             for item in value)
        return "\n".join(lines)
