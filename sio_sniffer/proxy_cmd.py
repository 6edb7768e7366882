"""`sio-sniffer proxy`: run the sniffer in front of a Socket.IO server until interrupted.

By default the command runs in two processes: this one relays (byte-level, with a tap that
only frames copies) and a child (:mod:`sio_sniffer.worker`) parses, decodes, analyses and
writes the log, capture and live views. Forwarding then never shares a process with decoding.
``--single-process`` keeps everything here, as the embedded :class:`Sniffer` does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import ssl
import sys
import time
from typing import IO, Any

from sio_sniffer import adminui, loops, model
from sio_sniffer.addresses import split_host_port
from sio_sniffer.analysis import AnalysisConfig, ConfigError, load_profile, load_rules
from sio_sniffer.model import Record
from sio_sniffer.observer import Observer
from sio_sniffer.proxy import DEFAULT_PORT, DEFAULT_UPSTREAM, ProxyConfig, default_listen
from sio_sniffer.shutdown import stop_event
from sio_sniffer.sinks.capture import CaptureWriter
from sio_sniffer.sinks.jsonlog import JsonLogSink, LogFilter
from sio_sniffer.transport.channel import DEFAULT_LIMIT, ChannelWriter, PipeWriter
from sio_sniffer.transport.relay import PortInUseError, Relay, format_addr
from sio_sniffer.ui.address import parse_ui_address


def parse_listen(value: str) -> list[tuple[str, int]]:
    """``PORT``, ``:PORT``, ``HOST:PORT`` or ``[V6]:PORT``; a bare port means both loopbacks."""
    host, port = split_host_port(value, "127.0.0.1:8766, [::1]:8766 or 8766")
    return default_listen(port) if host in ("", "localhost") else [(host, port)]


MIB = 1024 * 1024


def _positive_mib(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of MiB")
    return number


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", type=parse_listen, action="append", metavar="HOST:PORT",
                   help=f"where clients connect (repeatable; default loopback port {DEFAULT_PORT} "
                        "on 127.0.0.1 and ::1; claude-mpm profile: 8765)")
    p.add_argument("--upstream", metavar="URL",
                   help=f"the real server (default {DEFAULT_UPSTREAM}; claude-mpm profile: :8766)")
    p.add_argument("--path", default="/socket.io/", help="Engine.IO path (default /socket.io/)")
    p.add_argument("--profile", metavar="NAME|FILE",
                   help="an app profile, e.g. claude-mpm (ports, ingest path, listened names)")
    p.add_argument("--ingest-path", action="append", metavar="PATH",
                   help="HTTP path whose POSTs are events going in (default /api/events)")
    p.add_argument("--rules", metavar="FILE", help="TOML rules for in->out matching and roles")
    p.add_argument("--deadline", type=float, metavar="SECONDS",
                   help="how long an ingested event may take to come out (default 2)")
    p.add_argument("--log", metavar="FILE", help="write the JSON log here (default stdout)")
    p.add_argument("--pretty", action="store_true", help="render records for a terminal")
    p.add_argument("--max-payload-log", type=int, default=2048, metavar="BYTES",
                   help="truncate logged args to this many bytes (default 2048)")
    p.add_argument("--nsp", type=_csv, action="extend", default=[],
                   help="log only these namespaces (comma-separated, repeatable)")
    p.add_argument("--name", type=_csv, action="extend", default=[], metavar="GLOB",
                   help="log only events whose name matches (glob, repeatable)")
    p.add_argument("--dir", choices=("in", "out"), help="log only one direction")
    p.add_argument("--quiet-heartbeats", action="store_true", help="no ping/pong summaries")
    p.add_argument("--verbose", action="store_true",
                   help="log every ping/pong and every polling HTTP exchange")
    p.add_argument("--capture", metavar="FILE",
                   help="write every exchange and record to FILE (JSON lines) for replay/report; "
                        "auth and cookies are stored as fingerprints, so replay then needs --auth")
    p.add_argument("--capture-rotate", type=int, metavar="BYTES",
                   help="start a new capture file (FILE.1, FILE.2, ...) past this size")
    p.add_argument("--show-secrets", action="store_true",
                   help="store auth tokens and cookies in the capture as they are")
    p.add_argument("--tls-cert", metavar="PEM", help="serve TLS to clients with this certificate")
    p.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    p.add_argument("--ui", type=parse_ui_address, metavar="[HOST:]PORT",
                   help="serve the live page here (host defaults to 127.0.0.1; any other host "
                        "requires the token printed at start)")
    adminui.add_arguments(p)
    p.add_argument("--observer-buffer", type=_positive_mib, default=DEFAULT_LIMIT // MIB,
                   metavar="MIB",
                   help=f"copies of traffic the relay may hold for the observer process while it "
                        f"catches up (default {DEFAULT_LIMIT // MIB}); past it copies, never "
                        "traffic, are dropped and the connections that lost some are flagged; "
                        "with --single-process there is no such queue: a lagging observer "
                        "holds up forwarding instead")
    p.add_argument("--loop", choices=loops.LOOPS, default="auto",
                   help="event loop (default auto: uvloop when installed, else asyncio)")
    p.add_argument("--single-process", action="store_true",
                   help="decode and analyse in the relay's own process (by default a second "
                        "process does it, so forwarding keeps a process to itself)")


def build_config(args: argparse.Namespace) -> ProxyConfig:
    profile = load_profile(args.profile) if args.profile else None
    analysis = AnalysisConfig(profile=profile,
                              ingest_paths=tuple(args.ingest_path) if args.ingest_path else None,
                              rules=load_rules(args.rules) if args.rules else ())
    if args.deadline is not None:
        analysis.deadline = args.deadline
    listen: list[tuple[str, int]] = [a for group in (args.listen or []) for a in group]
    if not listen:
        listen = default_listen(profile.listen_port if profile and profile.listen_port
                                else DEFAULT_PORT)
    upstream = args.upstream
    if upstream is None:
        upstream = f"http://127.0.0.1:{profile.upstream_port}" \
            if profile and profile.upstream_port else DEFAULT_UPSTREAM
    ssl_listen = None
    if args.tls_cert:
        ssl_listen = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_listen.load_cert_chain(args.tls_cert, args.tls_key)
    return ProxyConfig(listen=listen, upstream=upstream, path=args.path, verbose=args.verbose,
                       ssl_listen=ssl_listen, analysis=analysis)


def _open_log(path: str | None) -> IO[bytes]:
    if path is None:
        return sys.stdout.buffer
    return open(path, "ab")


def _say(message: str) -> None:
    print(f"sio-sniffer: {message}", file=sys.stderr, flush=True)


class CommandError(Exception):
    """Something the user asked for cannot be done; the message says what (exit code 2)."""


class ObserverSide:
    """What the command observes with: JSON log, capture, live page, Admin UI, and the
    Observer feeding them. The same in the worker process and with ``--single-process``."""

    def __init__(self, args: argparse.Namespace, config: ProxyConfig) -> None:
        self.args = args
        try:
            self.stream = _open_log(args.log)
        except OSError as exc:
            raise CommandError(f"cannot open the log file {args.log}: "
                               f"{exc.strerror or exc}") from exc
        self.log = JsonLogSink(
            self.stream, pretty=args.pretty, max_payload=args.max_payload_log,
            log_filter=LogFilter(nsp=tuple(args.nsp), name=tuple(args.name), dir=args.dir,
                                 quiet_heartbeats=args.quiet_heartbeats, verbose=args.verbose),
            on_problem=_say)
        sinks: list[Any] = [self.log]
        tap_sinks: list[Any] = []
        self.capture: CaptureWriter | None = None
        if args.capture:
            self.capture = CaptureWriter(args.capture, upstream=config.upstream,
                                         show_secrets=args.show_secrets,
                                         rotate_bytes=args.capture_rotate, on_problem=_say)
            sinks.append(self.capture)
            tap_sinks.append(self.capture.tap)
        self.ui: Any = None
        if args.ui is not None:
            from sio_sniffer.ui import LiveUI

            self.ui = LiveUI(*args.ui, title=f"sio-sniffer: {config.upstream}")
            sinks.append(self.ui.sink)
        try:
            self.admin = adminui.from_args(args, server_id=config.upstream)
        except adminui.AdminUIError as exc:
            raise CommandError(str(exc)) from exc
        if self.admin is not None:
            sinks.append(self.admin.record)
            tap_sinks.append(self.admin.tap)
        self.observer = Observer(path=config.path, verbose=config.verbose,
                                 analysis=config.analysis, sinks=sinks, tap_sinks=tap_sinks,
                                 tick_interval=config.tick_interval)

    async def start(self) -> list[str]:
        """Start the observer and the pages; the lines that say where the pages are."""
        from sio_sniffer.ui import UIError

        self.observer.start()
        try:
            if self.admin is not None:
                self.admin.watch_rooms(self.observer.rooms)
                await self.admin.start()
            if self.ui is not None:
                self.ui.use_analysis(self.observer.analyzer)
                await self.ui.start()
        except (adminui.AdminUIError, UIError) as exc:
            await self.close()
            raise CommandError(str(exc)) from exc
        notices = []
        if self.ui is not None:
            notices.append(f"live page at {self.ui.url}")
        if self.admin is not None:
            page = f"{self.admin.url}/" if self.admin.static_dir else "https://admin.socket.io"
            notices.append(f"Admin UI server {self.admin.url} (open {page})")
        return notices

    def print_rooms(self) -> None:
        self.log(Record(model.ROOMS, time.time(), extra={"rooms": self.observer.rooms()}))

    async def close(self) -> None:
        """Work off what is queued; the analysis' rooms and summary records end log and capture."""
        await self.observer.finish()
        if self.admin is not None:
            await self.admin.stop()
        if self.ui is not None:
            await self.ui.stop()
        self.log.close(time.time())
        if self.capture is not None:
            self.capture.close()
        if self.args.log is not None:
            # a full disk keeps the unwritten tail in the file buffer; that was reported already
            with contextlib.suppress(OSError):
                self.stream.close()


class _Worker:
    """The observer process, fed through its stdin. On a pipe of its own it answers "ready" and
    the lines that say where its pages are, or in one sentence why it cannot start."""

    def __init__(self, proc: asyncio.subprocess.Process, notices: list[str], pipe: int,
                 limit: int) -> None:
        self.proc = proc
        self.notices = notices
        self.pipe = PipeWriter(pipe)
        self.channel = ChannelWriter(self.pipe.write, self.pipe.buffered, limit=limit)

    @classmethod
    async def spawn(cls, argv: list[str], limit: int) -> _Worker:
        fds: list[int] = []  # every descriptor made here; closed unless handed on
        proc: asyncio.subprocess.Process | None = None
        try:
            ready_r, ready_w = os.pipe()
            fds += (ready_r, ready_w)
            copies_r, copies_w = os.pipe()
            fds += (copies_r, copies_w)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sio_sniffer.worker", str(ready_w), *argv,
                stdin=copies_r, pass_fds=(ready_w,))
            for fd in (ready_w, copies_r):  # the child's ends
                fds.remove(fd)
                os.close(fd)
            fds.remove(ready_r)
            with os.fdopen(ready_r, "rb") as ready:
                answer = (await asyncio.to_thread(ready.read)).decode().strip()
            first, *notices = answer.splitlines() or [""]
            if first != "ready":
                await proc.wait()
                raise CommandError(answer or
                                   f"the observer process exited with {proc.returncode}")
            fds.remove(copies_w)
            return cls(proc, notices, copies_w, limit)
        except BaseException:
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            raise
        finally:
            for fd in fds:
                os.close(fd)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    async def finish(self) -> int:
        """No more traffic: close the pipe; the worker works off its backlog and exits."""
        self.channel.flush()
        await self.pipe.close()
        if self.channel.dropped:
            _say(f"the observer process fell behind: {self.channel.dropped} bytes of copies "
                 "were not analysed (forwarding was not affected; --observer-buffer sets how "
                 "much may wait)")
        return await self.proc.wait()


async def serve(args: argparse.Namespace, argv: list[str]) -> int:
    try:
        config = build_config(args)
    except (ConfigError, OSError, ssl.SSLError) as exc:
        _say(str(exc))
        return 2
    side: ObserverSide | None = None
    worker: _Worker | None = None
    try:
        if args.single_process:
            side = ObserverSide(args, config)
            notices = await side.start()
            relay = Relay(config.upstream, config.listen, side.observer.tap,
                          ssl_listen=config.ssl_listen)
        else:
            worker = await _Worker.spawn(argv, args.observer_buffer * MIB)
            notices = worker.notices
            relay = Relay(config.upstream, config.listen, lambda _: None,
                          ssl_listen=config.ssl_listen, tap_factory=worker.channel.tap)
        await relay.start()
    except (CommandError, PortInUseError, ValueError) as exc:
        _say(str(exc))
        if side is not None:
            await side.close()
        if worker is not None:
            await worker.finish()
        return 2
    listening = ", ".join(format_addr(h, p) for h, p in relay.bound)
    _say(f"listening on {listening}, upstream {config.upstream} "
         "(Ctrl-C to stop; SIGUSR1 prints the inferred rooms)")
    for notice in notices:
        _say(notice)
    stop = stop_event()
    loop = asyncio.get_running_loop()
    rooms = side.print_rooms if side is not None else \
        lambda: worker.signal(signal.SIGUSR1) if worker is not None else None
    with contextlib.suppress(AttributeError, NotImplementedError):
        loop.add_signal_handler(signal.SIGUSR1, rooms)
    await stop.wait()
    await relay.stop()
    if side is not None:
        await side.close()
    if worker is not None and await worker.finish() != 0:
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return loops.run(lambda: serve(args, args.argv), args.loop)
    except loops.LoopError as exc:
        _say(str(exc))
        return 2
