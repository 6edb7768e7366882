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

from sio_sniffer import model
from sio_sniffer.model import Record
from sio_sniffer.proxy import DEFAULT_PORT, DEFAULT_UPSTREAM, ProxyConfig, Sniffer, default_listen
from sio_sniffer.sinks.jsonlog import JsonLogSink, LogFilter
from sio_sniffer.transport.relay import PortInUseError


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
    p.add_argument("--tls-cert", metavar="PEM", help="serve TLS to clients with this certificate")
    p.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")


def _analysis_config(args: argparse.Namespace, profile: Any) -> Any:
    from sio_sniffer.analysis import AnalysisConfig, load_rules

    kwargs: dict[str, Any] = {}
    if profile is not None:
        kwargs["profile"] = profile
    if args.ingest_path:
        kwargs["ingest_paths"] = tuple(args.ingest_path)
    elif profile is not None and getattr(profile, "ingest_paths", None):
        kwargs["ingest_paths"] = tuple(profile.ingest_paths)
    if args.deadline is not None:
        kwargs["deadline"] = args.deadline
    if args.rules:
        kwargs["rules"] = load_rules(args.rules)
    return AnalysisConfig(**kwargs)


def build_config(args: argparse.Namespace) -> ProxyConfig:
    profile = None
    if args.profile:
        from sio_sniffer.analysis import load_profile

        profile = load_profile(args.profile)
    listen: list[tuple[str, int]] = [a for group in (args.listen or []) for a in group]
    if not listen:
        port = getattr(profile, "listen_port", None) or DEFAULT_PORT
        listen = default_listen(port)
    upstream = args.upstream
    if upstream is None:
        port = getattr(profile, "upstream_port", None)
        upstream = f"http://127.0.0.1:{port}" if port else DEFAULT_UPSTREAM
    ssl_listen = None
    if args.tls_cert:
        ssl_listen = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_listen.load_cert_chain(args.tls_cert, args.tls_key)
    return ProxyConfig(listen=listen, upstream=upstream, path=args.path, verbose=args.verbose,
                       ssl_listen=ssl_listen, analysis=_analysis_config(args, profile))


def _open_log(path: str | None) -> IO[bytes]:
    if path is None:
        return sys.stdout.buffer
    return open(path, "ab")


def _rooms_record(sniffer: Sniffer) -> Record:
    return Record(model.ROOMS, time.time(), extra={"rooms": sniffer.rooms()})


async def serve(args: argparse.Namespace) -> int:
    config = build_config(args)
    stream = _open_log(args.log)
    log = JsonLogSink(stream, pretty=args.pretty, max_payload=args.max_payload_log,
                      log_filter=LogFilter(nsp=tuple(args.nsp), name=tuple(args.name),
                                           dir=args.dir, quiet_heartbeats=args.quiet_heartbeats,
                                           verbose=args.verbose),
                      on_problem=lambda m: print(f"sio-sniffer: {m}", file=sys.stderr))
    sniffer = Sniffer(config, sinks=[log])
    try:
        await sniffer.start()
    except PortInUseError as exc:
        print(f"sio-sniffer: {exc}", file=sys.stderr)
        return 2
    listening = ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in sniffer.bound)
    print(f"sio-sniffer: listening on {listening}, upstream {config.upstream} "
          "(Ctrl-C to stop; SIGUSR1 prints the inferred rooms)", file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(AttributeError, NotImplementedError):
        loop.add_signal_handler(signal.SIGUSR1, lambda: log(_rooms_record(sniffer)))
    await stop.wait()
    await sniffer.stop()
    log(_rooms_record(sniffer))
    log(Record(model.SUMMARY, time.time(), extra=dict(sniffer.stats)))
    log.close(time.time())
    if args.log is not None:
        stream.close()
    return 0


def run(args: argparse.Namespace) -> int:
    return asyncio.run(serve(args))
