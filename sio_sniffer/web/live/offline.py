"""``sio-sniffer report FILE... --ui [HOST:]PORT``: loaded captures and HAR files in the live page.

The report command runs the files through the pipeline and the analysis with :func:`offline_ui`'s
sink attached, then :func:`serve` shows the page until Ctrl-C. The page is the live one in
``offline`` mode: the rates and "last activity" use the records' own clock.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from sio_sniffer.support.shutdown import stop_event
from sio_sniffer.web.live.server import LiveUI, UIError

OFFLINE_BUFFER = 100_000


def offline_ui(address: tuple[str, int], files: Sequence[str], token: str | None = None
               ) -> LiveUI:
    """A page that keeps (and hands to browsers) up to ``OFFLINE_BUFFER`` loaded records."""
    host, port = address
    title = "sio-sniffer: " + ", ".join(Path(f).name for f in files)
    return LiveUI(host, port, token, mode="offline", title=title, history=OFFLINE_BUFFER,
                  page_buffer=OFFLINE_BUFFER)


def serve(ui: LiveUI, status: int) -> int:
    """Serve the loaded page until SIGINT/SIGTERM; ``status`` unless the page cannot start."""
    try:
        asyncio.run(_serve(ui))
    except UIError as exc:
        print(f"sio-sniffer report: {exc}", file=sys.stderr)
        return 2
    return status


async def _serve(ui: LiveUI) -> None:
    await ui.start()
    exposed = ui.policy.notice(ui.port)
    if exposed is not None:
        print(f"sio-sniffer report: {exposed}", file=sys.stderr, flush=True)
    print(f"sio-sniffer report: {ui.records} records loaded; page at {ui.url} "
          "(Ctrl-C to stop)", file=sys.stderr, flush=True)
    stop = stop_event()
    try:
        await stop.wait()
    finally:
        await ui.stop()
