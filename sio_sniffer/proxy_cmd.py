"""`sio-sniffer proxy`: run the sniffer in front of a Socket.IO server until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import ssl
import sys
import time
from typing import IO, Any

from sio_sniffer import adminui, model
from sio_sniffer.analysis import AnalysisConfig, ConfigError, load_profile, load_rules
from sio_sniffer.model import Record
from sio_sniffer.proxy import DEFAULT_PORT, DEFAULT_UPSTREAM, ProxyConfig, Sniffer, default_listen
from sio_sniffer.sinks.capture import CaptureWriter
from sio_sniffer.sinks.jsonlog import JsonLogSink, LogFilter
from sio_sniffer.transport.relay import PortInUseError
from sio_sniffer.ui.address import parse_ui_address


def parse_listen(value: str) -> list[tuple[str, int]]:
    """``PORT``, ``:PORT``, ``HOST:PORT`` or ``[V6]:PORT``; a bare port means both loopbacks."""
    text = value.strip()
    host = ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.lstrip(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        port_text = text
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8766, [::1]:8766 or 8766)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 0-65535")
    return default_listen(port) if host in ("", "localhost") else [(host, port)]


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


def _rooms_record(sniffer: Sniffer) -> Record:
    return Record(model.ROOMS, time.time(), extra={"rooms": sniffer.rooms()})


async def serve(args: argparse.Namespace) -> int:
    try:
        config = build_config(args)
    except (ConfigError, OSError, ssl.SSLError) as exc:
        print(f"sio-sniffer: {exc}", file=sys.stderr)
        return 2
    try:
        stream = _open_log(args.log)
    except OSError as exc:
        print(f"sio-sniffer: cannot open the log file {args.log}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2
    log = JsonLogSink(stream, pretty=args.pretty, max_payload=args.max_payload_log,
                      log_filter=LogFilter(nsp=tuple(args.nsp), name=tuple(args.name),
                                           dir=args.dir, quiet_heartbeats=args.quiet_heartbeats,
                                           verbose=args.verbose),
                      on_problem=lambda m: print(f"sio-sniffer: {m}", file=sys.stderr))
    sinks: list[Any] = [log]
    tap_sinks: list[Any] = []
    capture = None
    if args.capture:
        capture = CaptureWriter(args.capture, upstream=config.upstream,
                                show_secrets=args.show_secrets, rotate_bytes=args.capture_rotate,
                                on_problem=lambda m: print(f"sio-sniffer: {m}", file=sys.stderr))
        sinks.append(capture)
        tap_sinks.append(capture.tap)
    ui: Any = None
    if args.ui is not None:
        from sio_sniffer.ui import LiveUI, UIError

        ui = LiveUI(*args.ui, title=f"sio-sniffer: {config.upstream}")
        sinks.append(ui.sink)
    try:
        admin = adminui.from_args(args, server_id=config.upstream)
        if admin is not None:
            sinks.append(admin.record)
            tap_sinks.append(admin.tap)
            await admin.start()
    except adminui.AdminUIError as exc:
        print(f"sio-sniffer: {exc}", file=sys.stderr)
        return 2
    sniffer = Sniffer(config, sinks=sinks, tap_sinks=tap_sinks)
    if admin is not None:
        admin.watch_rooms(sniffer.rooms)
    if ui is not None:
        ui.use_analysis(sniffer.analyzer)
        try:
            await ui.start()
        except UIError as exc:
            print(f"sio-sniffer: {exc}", file=sys.stderr)
            return 2
    try:
        await sniffer.start()
    except PortInUseError as exc:
        print(f"sio-sniffer: {exc}", file=sys.stderr)
        if ui is not None:
            await ui.stop()
        if admin is not None:
            await admin.stop()
        return 2
    listening = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in sniffer.bound)
    print(f"sio-sniffer: listening on {listening}, upstream {config.upstream} "
          "(Ctrl-C to stop; SIGUSR1 prints the inferred rooms)", file=sys.stderr)
    if ui is not None:
        print(f"sio-sniffer: live page at {ui.url}", file=sys.stderr, flush=True)
    if admin is not None:
        page = f"{admin.url}/" if admin.static_dir else "https://admin.socket.io"
        print(f"sio-sniffer: Admin UI server {admin.url} (open {page})", file=sys.stderr,
              flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(AttributeError, NotImplementedError):
        loop.add_signal_handler(signal.SIGUSR1, lambda: log(_rooms_record(sniffer)))
    await stop.wait()
    # Stopping runs the analysis' finish: its rooms and summary records end the log and capture.
    await sniffer.stop()
    if admin is not None:
        await admin.stop()
    if ui is not None:
        await ui.stop()
    log.close(time.time())
    if capture is not None:
        capture.close()
    if args.log is not None:
        # a full disk keeps the unwritten tail in the file buffer; that was reported already
        with contextlib.suppress(OSError):
            stream.close()
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(serve(args))
