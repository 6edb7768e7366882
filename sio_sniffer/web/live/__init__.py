"""The live view: a web page of the traffic, fed by the same record stream as the log.

``LiveUI(host, port, token=None)`` serves the page (``sio_sniffer/web/live/static/``) and streams
records to it over a WebSocket; its :meth:`~sio_sniffer.web.live.server.LiveUI.sink` is a Sniffer
sink. ``LiveUI`` is imported on first use so that the CLI can parse ``--ui`` without aiohttp.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sio_sniffer.web.live.server import LiveUI, UIError

__all__ = ["LiveUI", "UIError"]


def __getattr__(name: str) -> Any:
    if name in ("LiveUI", "UIError"):
        from sio_sniffer.web.live import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
