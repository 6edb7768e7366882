"""What `sio-sniffer proxy` runs with, as typed values (the command line is parsed elsewhere).

:class:`ObserverConfig` is everything the observing side needs; it is plain data (no sockets, no
TLS contexts) so the relay process can hand it to the observer process as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sio_sniffer.analysis import AnalysisConfig
from sio_sniffer.cluster import ClusterConfig
from sio_sniffer.pipeline.sniffer import ProxyConfig
from sio_sniffer.sinks.jsonlog import LogFilter
from sio_sniffer.transport.channel import DEFAULT_LIMIT
from sio_sniffer.web.adminui import AdminUIOptions


@dataclass
class ObserverConfig:
    """The log, capture, pages and analysis of one proxy run."""

    upstream: str
    path: str = "/socket.io/"
    verbose: bool = False
    analysis: AnalysisConfig | None = None
    tick_interval: float = 0.1
    log: str | None = None  # None: standard output
    log_rotate: int | None = None  # --log-rotate BYTES: LOG.1, LOG.2, ... past this size
    pretty: bool = False
    max_payload_log: int = 2048
    log_filter: LogFilter = field(default_factory=LogFilter)
    capture: str | None = None
    capture_rotate: int | None = None
    show_secrets: bool = False
    secret_names: tuple[str, ...] = ()  # --secret-name: patterns added to the secrets policy
    ui: tuple[str, int] | None = None
    admin_ui: AdminUIOptions | None = None
    cluster: ClusterConfig | None = None
    metrics: tuple[str, int] | None = None  # --metrics HOST:PORT
    ui_token: str | None = None  # --ui-token: asked by the live page and --metrics
    process_mode: str = "two-process"  # for the build info metric


@dataclass
class RunConfig:
    """One `proxy` run: the relay's side, the observer's side and how the two are run."""

    sniffer: ProxyConfig
    observer: ObserverConfig
    observer_buffer: int = DEFAULT_LIMIT  # bytes of copies the relay may hold for the observer
    loop: str = "auto"
    single_process: bool = False
    allow_remote: bool = False  # --allow-remote: clients may connect from other machines
