"""The passive tap of one relayed connection: HTTP first, WebSocket frames after a 101 (sans-IO).

The relay hands every forwarded chunk here *after* writing it to the other side. Nothing in this
module can reach the forwarding path: every failure is caught, reported as a :class:`TapError`
event, and that direction of the tap goes "raw" (it stops parsing) while the bytes keep flowing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from sio_sniffer.model.tap import Direction, TapError, TapEvent, WsOpen, header
from sio_sniffer.transport.tap.errors import TapParseError
from sio_sniffer.transport.tap.http import HttpTap
from sio_sniffer.transport.tap.ws import WsFrameParser, WsTapError, negotiated_deflate

log = logging.getLogger(__name__)

Mode = Literal["http", "websocket", "raw"]


class ConnectionTap:
    """Parses copies of both directions of one connection and hands events to ``emit``.

    ``data`` and ``eof`` never raise; a raising ``emit`` is logged once per connection and
    otherwise ignored, so neither a parser bug nor a consumer bug can touch the traffic.
    """

    def __init__(
        self,
        conn: str,
        emit: Callable[[TapEvent], None],
        body_limit: int,
        clock: Callable[[], float],
        relayed: dict[Direction, int] | None = None,
    ) -> None:
        self.conn = conn
        # Bytes forwarded per direction, shared by every connection of one relay or channel
        # (the metrics' bytes relayed); counted before parsing, so raw mode counts too.
        self._relayed: dict[Direction, int] = relayed if relayed is not None else \
            {"in": 0, "out": 0}
        self._emit_fn = emit
        self._clock = clock
        self._body_limit = body_limit
        self._http = HttpTap(conn, body_limit)
        self._ws: dict[Direction, WsFrameParser] = {}
        self.mode: dict[Direction, Mode] = {"in": "http", "out": "http"}
        self._emit_failed = False

    def emit(self, event: TapEvent) -> None:
        """Deliver one event; a failing consumer must not break forwarding."""
        try:
            self._emit_fn(event)
        except Exception:
            if not self._emit_failed:
                self._emit_failed = True
                log.exception("tap event consumer raised on connection %s (further errors on "
                              "this connection are not logged)", self.conn)

    def data(self, dir: Direction, data: bytes) -> None:
        """A copy of ``data``, already forwarded in direction ``dir``."""
        self._relayed[dir] += len(data)
        mode = self.mode[dir]
        if mode == "raw":
            return
        ts = self._clock()
        try:
            if mode == "websocket":
                events = self._ws[dir].feed(data, ts)
            else:
                events = self._http.feed(dir, data, ts)
                if self._http.switch is not None:
                    events.extend(self._switch(ts))
        except TapParseError as exc:
            events = [*exc.events, self._give_up(dir, exc, ts)]
        except Exception as exc:
            events = [self._give_up(dir, exc, ts)]
        for event in events:
            self.emit(event)

    def eof(self, dir: Direction) -> None:
        """Direction ``dir`` ended (EOF or connection lost)."""
        if self.mode[dir] != "http":
            return
        ts = self._clock()
        try:
            events = self._http.feed_eof(dir, ts)
        except Exception as exc:
            events = [self._give_up(dir, exc, ts)]
        for event in events:
            self.emit(event)

    def _switch(self, ts: float) -> list[TapEvent]:
        switch = self._http.switch
        assert switch is not None
        if not switch.websocket:
            # a CONNECT tunnel carries opaque bytes (usually TLS): nothing to parse
            self.mode = {"in": "raw", "out": "raw"}
            return []
        deflate = negotiated_deflate(
            header(switch.response.headers, "sec-websocket-extensions"))
        events: list[TapEvent] = [WsOpen(
            conn=self.conn, ts=ts, request=switch.request,
            response_headers=switch.response.headers, deflate=deflate is not None,
        )]
        dirs: tuple[Direction, Direction] = ("in", "out")
        for dir in dirs:
            self._ws[dir] = WsFrameParser(self.conn, dir, deflate, self._body_limit)
            if self.mode[dir] == "http":
                self.mode[dir] = "websocket"
        for dir, rest in zip(dirs, (switch.rest_in, switch.rest_out), strict=True):
            if rest and self.mode[dir] == "websocket":
                try:
                    events.extend(self._ws[dir].feed(rest, ts))
                except WsTapError as exc:
                    events.extend(exc.events)
                    events.append(self._give_up(dir, exc, ts))
                except Exception as exc:
                    events.append(self._give_up(dir, exc, ts))
        return events

    def _give_up(self, dir: Direction, exc: Exception, ts: float) -> TapError:
        """Stop parsing direction ``dir``; the event that says why."""
        layer: Literal["http", "websocket"] = (
            "websocket" if self.mode[dir] == "websocket" else "http")
        if layer == "http" and dir == "out":
            # requests would otherwise pile up waiting for answers no one will parse
            self._http.stop_pairing()
        self.mode[dir] = "raw"
        if isinstance(exc, TapParseError):
            return TapError(conn=self.conn, ts=ts, dir=dir, layer=layer, reason=exc.reason,
                            raw=exc.raw, offset=exc.offset)
        return TapError(conn=self.conn, ts=ts, dir=dir, layer=layer,
                        reason=f"tap failure: {exc!r}", raw=b"")
