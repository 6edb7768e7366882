"""The Sniffer: relay + observer in one process, wired the one-way the architecture asks for.

The relay forwards first and hands copies of what passed to the observer, which queues them and
decodes, analyses and logs after the forwarding work of the same loop iteration (see
:mod:`sio_sniffer.pipeline.observer`). This in-process form is what tests, ``diagnose`` and library
users embed; the `proxy` command puts the observer in a second process instead.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sio_sniffer.pipeline.observer import Observer, Sink, TapSink, stderr_report
from sio_sniffer.transport.relay import PortInUseError, Relay

if TYPE_CHECKING:
    from sio_sniffer.analysis import AnalysisConfig
    from sio_sniffer.cluster import ClusterConfig

__all__ = ["PortInUseError", "ProxyConfig", "Sniffer"]

DEFAULT_PORT = 8766
DEFAULT_UPSTREAM = "http://127.0.0.1:8765"


def default_listen(port: int = DEFAULT_PORT) -> list[tuple[str, int]]:
    """Loopback on both IPv4 and IPv6: browsers resolve ``localhost`` to either."""
    return [("127.0.0.1", port), ("::1", port)]


@dataclass
class ProxyConfig:
    listen: list[tuple[str, int]] = field(default_factory=default_listen)
    upstream: str = DEFAULT_UPSTREAM
    path: str = "/socket.io/"
    verbose: bool = False
    ssl_listen: ssl.SSLContext | None = None
    # None turns analysis off (a plain decoding logger); the CLI always passes one.
    analysis: AnalysisConfig | None = None
    tick_interval: float = 0.1
    cluster: ClusterConfig | None = None  # --cluster: join the app's Redis


class Sniffer:
    """A running sniffer. ``sinks`` hear every Record (analysis output included)."""

    def __init__(self, config: ProxyConfig, sinks: Sequence[Sink] = (),
                 tap_sinks: Sequence[TapSink] = (),
                 report: Callable[[str], None] = stderr_report) -> None:
        self.config = config
        self.observer = Observer(path=config.path, verbose=config.verbose,
                                 analysis=config.analysis, sinks=sinks, tap_sinks=tap_sinks,
                                 tick_interval=config.tick_interval, report=report,
                                 cluster=config.cluster)
        self._relay = Relay(config.upstream, config.listen, self.observer.tap,
                            ssl_listen=config.ssl_listen)
        self._stopped = False

    @property
    def bound(self) -> list[tuple[str, int]]:
        return self._relay.bound

    @property
    def url(self) -> str:
        host, port = self._relay.bound[0]
        scheme = "https" if self.config.ssl_listen is not None else "http"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    @property
    def open_connections(self) -> int:
        """Client connections being relayed right now."""
        return len(self._relay.links)

    @property
    def analyzer(self) -> Any:
        return self.observer.analyzer

    @property
    def stats(self) -> dict[str, int]:
        return self.observer.stats

    def rooms(self) -> list[dict[str, Any]]:
        return self.observer.rooms()

    async def start(self) -> None:
        """Bind the listen addresses (PortInUseError if one is taken) and start observing."""
        await self._relay.start()
        self.observer.start()

    async def stop(self) -> None:
        """Close the listeners and connections, then let analysis and sinks finish. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await self._relay.stop()
        await self.observer.finish()
