"""The observing side of `sio-sniffer proxy`: JSON log, capture, live page, Admin UI, and the
Observer feeding them. The same in the observer process and with ``--single-process``."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import IO, Any

from sio_sniffer import model
from sio_sniffer.capture import CaptureWriter
from sio_sniffer.model import Record, add_secret_names
from sio_sniffer.pipeline.observer import Observer
from sio_sniffer.proxy.config import ObserverConfig
from sio_sniffer.sinks.jsonlog import JsonLogSink, LogFile
from sio_sniffer.sinks.metrics import Health, Metrics, Sources
from sio_sniffer.web import adminui
from sio_sniffer.web.metrics import MetricsError, MetricsServer


class CommandError(Exception):
    """Something the user asked for cannot be done; the message says what (exit code 2)."""


def say(message: str) -> None:
    print(f"sio-sniffer: {message}", file=sys.stderr, flush=True)


def _open_log(path: str | None, rotate_bytes: int | None) -> IO[bytes] | LogFile:
    if path is None:
        return sys.stdout.buffer
    return LogFile(path, rotate_bytes)


class ObserverSide:
    """What the command observes with (see the module's doc)."""

    def __init__(self, config: ObserverConfig) -> None:
        self.config = config
        # The policy is per process: the observer process applies the patterns it was handed.
        add_secret_names(config.secret_names)
        try:
            self.stream = _open_log(config.log, config.log_rotate)
        except OSError as exc:
            raise CommandError(f"cannot open the log file {config.log}: "
                               f"{exc.strerror or exc}") from exc
        self.log = JsonLogSink(self.stream, pretty=config.pretty,
                               max_payload=config.max_payload_log,
                               log_filter=config.log_filter, on_problem=say)
        sinks: list[Any] = [self.log]
        tap_sinks: list[Any] = []
        self.capture: CaptureWriter | None = None
        if config.capture:
            self.capture = CaptureWriter(config.capture, upstream=config.upstream,
                                         show_secrets=config.show_secrets,
                                         rotate_bytes=config.capture_rotate, on_problem=say,
                                         cluster_node=(config.cluster.node if config.cluster
                                                       else None))
            sinks.append(self.capture)
            tap_sinks.append(self.capture.tap)
        self.ui: Any = None
        if config.ui is not None:
            from sio_sniffer.web.live import LiveUI

            self.ui = LiveUI(*config.ui, token=config.ui_token,
                             title=f"sio-sniffer: {config.upstream}")
            sinks.append(self.ui.sink)
        try:
            self.admin = None if config.admin_ui is None else \
                adminui.AdminUIBridge.from_options(config.admin_ui, server_id=config.upstream)
        except adminui.AdminUIError as exc:
            raise CommandError(str(exc)) from exc
        if self.admin is not None:
            sinks.append(self.admin.record)
            tap_sinks.append(self.admin.tap)
        # The relay's figures: the owner of the relay (single process) or of the copies'
        # channel (the observer process) points ``sources`` at them.
        self.sources = Sources(lag=lambda: self.observer.lag(),
                               backlog=lambda: self.observer.backlog,
                               clients=self._clients)
        self.health = Health(self.sources)
        self.metrics: Metrics | None = None
        self.metrics_server: MetricsServer | None = None
        if config.metrics is not None or config.ui is not None:
            sinks.append(self.health)
        if config.metrics is not None:
            analysis = config.analysis
            self.metrics = Metrics(
                self.health, mode=config.process_mode,
                loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
                ingest_paths=analysis.effective_ingest_paths() if analysis else ())
            sinks.append(self.metrics)
            metrics = self.metrics
            self.metrics_server = MetricsServer(
                *config.metrics, lambda: (metrics.exposition(), metrics.content_type),
                self.health.report, token=config.ui_token)
        self.observer = Observer(path=config.path, verbose=config.verbose,
                                 analysis=config.analysis, sinks=sinks, tap_sinks=tap_sinks,
                                 tick_interval=config.tick_interval, cluster=config.cluster)
        if self.metrics is not None and self.observer.analyzer is not None:
            # every sample of the analysis' latencies, not only the last ones it keeps
            self.observer.analyzer.relay.latency.listener = self.metrics.relay_latency.observe
            self.observer.analyzer.pairing.ack_latency.listener = \
                self.metrics.ack_latency.observe

    def _clients(self) -> list[tuple[str, str]]:
        analyzer = self.observer.analyzer
        if analyzer is None:
            return []
        return [(s.role(), s.transport or "unknown") for s in analyzer.sessions.open.values()]

    async def start(self) -> list[str]:
        """Start the observer and the pages; the lines that say where the pages are."""
        from sio_sniffer.web.live import UIError

        self.observer.start()
        try:
            if self.admin is not None:
                self.admin.watch_rooms(self.observer.rooms)
                await self.admin.start()
            if self.ui is not None:
                self.ui.use_analysis(self.observer.analyzer)
                self.ui.serve_health(self.health.report)
                await self.ui.start()
            if self.metrics_server is not None:
                await self.metrics_server.start()
        except (adminui.AdminUIError, UIError, MetricsError) as exc:
            await self.close()
            raise CommandError(str(exc)) from exc
        notices = [n for n in (
            self.admin.policy.notice(self.admin.bound[1]) if self.admin and self.admin.bound
            else None,
            self.ui.policy.notice(self.ui.port) if self.ui is not None else None,
            self.metrics_server.policy.notice(self.metrics_server.port)
            if self.metrics_server is not None else None) if n is not None]
        if self.ui is not None:
            notices.append(f"live page at {self.ui.url}")
        if self.admin is not None:
            page = f"{self.admin.url}/" if self.admin.static_dir else "https://admin.socket.io"
            notices.append(f"Admin UI server {self.admin.url} (open {page})")
        if self.metrics_server is not None:
            token = self.metrics_server.token
            notices.append(f"metrics at {self.metrics_server.url}" + (
                f" (send 'Authorization: Bearer {token}')" if token else ""))
        return notices

    def print_rooms(self) -> None:
        """SIGUSR1: the inferred rooms, to the log and, readable, to the terminal."""
        rooms = self.observer.rooms()
        self.log(Record(model.ROOMS, time.time(), extra={"rooms": rooms}))
        say(f"{len(rooms)} inferred room(s)" + "".join(
            f"\n  {room['nsp']}: {len(room['members'])} member(s), {room['broadcasts']} "
            f"broadcast(s) ({', '.join(map(str, room['names']))})"
            + (", everyone on the namespace" if room.get("everyone") else "")
            for room in rooms))

    def reopen_log(self) -> None:
        """SIGHUP: reopen ``--log FILE`` at its path (logrotate moved the old file away)."""
        self.log.reopen()

    async def close(self) -> None:
        """Work off what is queued; the analysis' rooms and summary records end log and capture."""
        await self.observer.finish()
        if self.admin is not None:
            await self.admin.stop()
        if self.ui is not None:
            await self.ui.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        self.log.close(time.time())
        if self.capture is not None:
            self.capture.close()
        if isinstance(self.stream, LogFile):
            self.stream.close()


