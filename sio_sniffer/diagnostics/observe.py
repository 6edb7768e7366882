"""A sniffer of the diagnostics' own: the probes' traffic runs through it, its records are kept.

The diagnostic commands drive real clients; routing them through a :class:`Sniffer` means their
findings come from the same records and analysis flags as the proxy's, and the flags can name
causes the clients alone cannot see (an event emitted under another name, a CONNECT never
answered, a ping that came late).
"""

from __future__ import annotations

from typing import Any

from sio_sniffer import model
from sio_sniffer.model import Record


class Observer:
    """``Observer(upstream)``; ``url = await observer.start()``; point clients at ``url``."""

    def __init__(self, upstream: str, profile: str | None = "claude-mpm",
                 deadline: float = 2.0) -> None:
        self.upstream = upstream
        self.records: list[Record] = []
        self.notes: list[str] = []
        self._profile = profile
        self._deadline = deadline
        self._sniffer: Any = None

    async def start(self) -> str:
        """Listen on a free loopback port in front of ``upstream``; returns the URL to use."""
        from sio_sniffer.analysis import AnalysisConfig, load_profile
        from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer

        analysis = AnalysisConfig(deadline=self._deadline, profile=load_profile(self._profile)
                                  if self._profile else None)
        self._sniffer = Sniffer(
            ProxyConfig(listen=[("127.0.0.1", 0)], upstream=self.upstream, analysis=analysis,
                        tick_interval=0.05),
            sinks=[self.records.append], report=self.notes.append)
        await self._sniffer.start()
        url: str = self._sniffer.url
        return url

    async def stop(self) -> None:
        """Stop (which also closes the analysis: open expectations become flags now)."""
        if self._sniffer is not None:
            await self._sniffer.stop()
            self._sniffer = None

    def of(self, kind: str) -> list[Record]:
        return [r for r in self.records if r.event == kind]

    def flags(self, *kinds: str) -> list[Record]:
        return [r for r in self.of(model.FLAG) if not kinds or r.get("flag") in kinds]
