"""`sio-sniffer proxy`: its arguments become a :class:`~sio_sniffer.proxy.config.RunConfig`,
which :func:`sio_sniffer.proxy.run.run` runs until interrupted."""

from __future__ import annotations

import argparse
import dataclasses
import socket
import ssl

from sio_sniffer.analysis import ConfigError, Profile
from sio_sniffer.cluster import ClusterConfig, ClusterError
from sio_sniffer.cluster.link import DEFAULT_ADAPTER_CHANNELS, DEFAULT_STREAMS, STREAM_PREFIX
from sio_sniffer.commands import options
from sio_sniffer.commands.options import parse_ui_address, split_host_port
from sio_sniffer.model.addresses import RemoteBindRefused, bind_policy
from sio_sniffer.pipeline.sniffer import DEFAULT_PORT, DEFAULT_UPSTREAM, ProxyConfig, default_listen
from sio_sniffer.proxy.config import ObserverConfig, RunConfig
from sio_sniffer.sinks.jsonlog import LogFilter
from sio_sniffer.support.loops import LOOPS
from sio_sniffer.transport.channel import DEFAULT_LIMIT
from sio_sniffer.web.adminui import AdminUIOptions

MIB = 1024 * 1024


class ArgumentsError(Exception):
    """Options that do not go together; the message says which (exit code 2)."""


def parse_listen(value: str) -> list[tuple[str, int]]:
    """``PORT``, ``:PORT``, ``HOST:PORT`` or ``[V6]:PORT``; a bare port means both loopbacks."""
    host, port = split_host_port(value, "127.0.0.1:8766, [::1]:8766 or 8766")
    return default_listen(port) if host in ("", "localhost") else [(host, port)]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", type=parse_listen, action="append", metavar="HOST:PORT",
                   help=f"where clients connect (repeatable; default loopback port {DEFAULT_PORT} "
                        "on 127.0.0.1 and ::1; claude-mpm profile: 8765)")
    p.add_argument("--upstream", metavar="URL",
                   help=f"the real server (default {DEFAULT_UPSTREAM}; claude-mpm profile: :8766)")
    p.add_argument("--path", default="/socket.io/", help="Engine.IO path (default /socket.io/)")
    options.add_analysis_arguments(p)
    p.add_argument("--log", metavar="FILE",
                   help="write the JSON log here (default stdout), created 0600 and appended "
                        "to; SIGHUP reopens it (for logrotate's postrotate)")
    p.add_argument("--log-rotate", type=options.positive_int, metavar="BYTES",
                   help="start a new log file (FILE.1, FILE.2, ...) past this size")
    p.add_argument("--pretty", action="store_true", help="render records for a terminal")
    p.add_argument("--max-payload-log", type=int, default=2048, metavar="BYTES",
                   help="truncate logged args to this many bytes (default 2048)")
    p.add_argument("--nsp", type=options.csv, action="extend", default=[],
                   help="log only these namespaces (comma-separated, repeatable)")
    p.add_argument("--name", type=options.csv, action="extend", default=[], metavar="GLOB",
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
    options.add_secret_name_argument(p)
    p.add_argument("--tls-cert", metavar="PEM", help="serve TLS to clients with this certificate")
    p.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    p.add_argument("--ui", type=parse_ui_address, metavar="[HOST:]PORT",
                   help="serve the live page here (host defaults to 127.0.0.1; any other host "
                        "asks for a token: --ui-token, else one printed at start)")
    options.add_ui_token_argument(p)
    p.add_argument("--admin-ui", type=parse_ui_address, metavar="[HOST:]PORT",
                   help="serve the official Socket.IO Admin UI protocol (/admin) here, "
                        "read-only, fed by what the sniffer sees (default host 127.0.0.1; any "
                        "other host needs --admin-ui-user and --admin-ui-password)")
    p.add_argument("--admin-ui-user", metavar="NAME", help="Admin UI login name")
    p.add_argument("--admin-ui-password", metavar="PASSWORD", help="Admin UI login password")
    p.add_argument("--admin-ui-static", metavar="PATH",
                   help="also serve an installed @socket.io/admin-ui build (its ui/dist) at / "
                        "of the --admin-ui port, so no internet is needed")
    p.add_argument("--metrics", type=parse_ui_address, metavar="[HOST:]PORT",
                   help="serve Prometheus metrics at /metrics and a health report at /healthz "
                        "here (host defaults to 127.0.0.1; any other host asks for a Bearer token: "
                        "--ui-token, else one printed at start)")
    p.add_argument("--observer-buffer", type=options.positive_mib, default=DEFAULT_LIMIT // MIB,
                   metavar="MIB",
                   help=f"copies of traffic the relay may hold for the observer process while it "
                        f"catches up (default {DEFAULT_LIMIT // MIB}); past it copies, never "
                        "traffic, are dropped and the connections that lost some are flagged; "
                        "with --single-process there is no such queue: a lagging observer "
                        "holds up forwarding instead")
    p.add_argument("--cluster", metavar="redis://HOST:PORT[/DB]",
                   help="one sniffer per node of a cluster: join the Redis the app's adapter "
                        "uses (read-only on its channels), so an event that came in here and "
                        "was delivered on another node is not lost, and a loss names the node")
    p.add_argument("--cluster-node", metavar="NAME",
                   help="this node's name in the cluster (default HOSTNAME:LISTEN-PORT)")
    p.add_argument("--cluster-channel", action="append", metavar="CHANNEL",
                   help="an adapter channel to read (repeatable; a * makes it a pattern, "
                        f"{STREAM_PREFIX}NAME a stream to XREAD; default "
                        f"{' and '.join(DEFAULT_ADAPTER_CHANNELS)}: python-socketio's "
                        "and Node @socket.io/redis-adapter's; with no stream named, the stream "
                        f"{DEFAULT_STREAMS[0]} of Node @socket.io/redis-streams-adapter is read "
                        "once it exists)")
    options.add_remote_arguments(p, "the proxy")
    p.add_argument("--loop", choices=LOOPS, default="auto",
                   help="event loop (default auto: uvloop when installed, else asyncio)")
    p.add_argument("--single-process", action="store_true",
                   help="decode and analyse in the relay's own process (by default a second "
                        "process does it, so forwarding keeps a process to itself)")


def build_config(args: argparse.Namespace) -> RunConfig:
    """The run the arguments ask for (ConfigError, OSError, ssl.SSLError or ArgumentsError)."""
    analysis = options.analysis_config(args)
    profile = analysis.profile
    listen: list[tuple[str, int]] = [a for group in (args.listen or []) for a in group]
    if not listen:
        listen = default_listen(profile.listen_port if profile and profile.listen_port
                                else DEFAULT_PORT)
    upstream = args.upstream
    if upstream is None:
        upstream = f"http://127.0.0.1:{profile.upstream_port}" \
            if profile and profile.upstream_port else DEFAULT_UPSTREAM
    _check_listeners(args)
    if args.log_rotate is not None and args.log is None:
        raise ArgumentsError("--log-rotate needs --log FILE (standard output is not rotated)")
    cluster = _cluster(args, listen, profile)
    if cluster is not None:
        analysis = dataclasses.replace(analysis, cluster_node=cluster.node)
    ssl_listen = None
    if args.tls_cert:
        ssl_listen = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_listen.load_cert_chain(args.tls_cert, args.tls_key)
    sniffer = ProxyConfig(listen=listen, upstream=upstream, path=args.path, verbose=args.verbose,
                          ssl_listen=ssl_listen, analysis=analysis)
    observer = ObserverConfig(
        upstream=upstream, path=args.path, verbose=args.verbose, analysis=analysis,
        tick_interval=sniffer.tick_interval, log=args.log, log_rotate=args.log_rotate,
        pretty=args.pretty,
        max_payload_log=args.max_payload_log,
        log_filter=LogFilter(nsp=tuple(args.nsp), name=tuple(args.name), dir=args.dir,
                             quiet_heartbeats=args.quiet_heartbeats, verbose=args.verbose),
        capture=args.capture, capture_rotate=args.capture_rotate,
        show_secrets=args.show_secrets, secret_names=tuple(args.secret_name), ui=args.ui,
        admin_ui=_admin_ui(args), cluster=cluster, metrics=args.metrics, ui_token=args.ui_token,
        process_mode="single-process" if args.single_process else "two-process")
    return RunConfig(sniffer=sniffer, observer=observer, observer_buffer=args.observer_buffer * MIB,
                     loop=args.loop, single_process=args.single_process,
                     allow_remote=args.allow_remote)


def _check_listeners(args: argparse.Namespace) -> None:
    """The loopback rule for the Admin UI bridge before the observer process starts, so its
    refusal is one sentence here (RemoteBindRefused, naming the fix); the proxy's own listen
    addresses are checked by proxy.run.serve, which also serves callers of run()."""
    if args.admin_ui is not None:
        bind_policy(args.admin_ui[0], "Admin UI bridge", "credentials",
                    credentials=args.admin_ui_user is not None)


def _cluster(args: argparse.Namespace, listen: list[tuple[str, int]],
             profile: Profile | None) -> ClusterConfig | None:
    """--cluster and its options, each falling back on the profile's [cluster] table."""
    url = args.cluster or (profile.cluster_url if profile else None)
    if url is None:
        if args.cluster_node or args.cluster_channel:
            raise ArgumentsError("--cluster-node and --cluster-channel need "
                                 "--cluster redis://HOST:PORT[/DB]")
        return None
    node = (args.cluster_node or (profile.cluster_node if profile else None)
            or f"{socket.gethostname()}:{listen[0][1]}")
    channels = tuple(args.cluster_channel or ()) or (profile.cluster_channels if profile
                                                      else ()) or DEFAULT_ADAPTER_CHANNELS
    try:
        return ClusterConfig(url=url, node=node, adapter_channels=channels)
    except ClusterError as exc:
        raise ArgumentsError(str(exc)) from exc


def _admin_ui(args: argparse.Namespace) -> AdminUIOptions | None:
    if args.admin_ui is None:
        if args.admin_ui_static or args.admin_ui_user or args.admin_ui_password:
            raise ArgumentsError("--admin-ui-static, --admin-ui-user and --admin-ui-password "
                                 "need --admin-ui [HOST:]PORT")
        return None
    host, port = args.admin_ui
    return AdminUIOptions(host, port, username=args.admin_ui_user,
                          password=args.admin_ui_password, static_path=args.admin_ui_static)


def run(args: argparse.Namespace) -> int:
    from sio_sniffer.proxy import run as proxy_run
    from sio_sniffer.proxy.side import say

    try:
        config = build_config(args)
    except (ConfigError, OSError, ssl.SSLError, ArgumentsError, RemoteBindRefused) as exc:
        say(str(exc))
        return 2
    return proxy_run.run(config)
