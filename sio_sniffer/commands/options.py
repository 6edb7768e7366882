"""Argument types shared by the commands: ``[HOST:]PORT`` (--listen, --ui, --admin-ui), ..."""

from __future__ import annotations

import argparse
import os
import re
from typing import TYPE_CHECKING

from sio_sniffer.model import add_secret_names
from sio_sniffer.model.addresses import ALLOW_REMOTE_FLAG, DEFAULT_HOST, UI_TOKEN_ENV

if TYPE_CHECKING:
    from sio_sniffer.analysis import AnalysisConfig


def split_host_port(value: str, examples: str) -> tuple[str, int]:
    """``PORT``, ``:PORT``, ``HOST:PORT`` or ``[V6]:PORT`` → (host or "", port); an argparse
    error naming ``examples`` otherwise."""
    text = value.strip()
    host = ""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        port_text = text
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not [HOST:]PORT (e.g. {examples})") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range 0-65535")
    return host, port


def parse_ui_address(value: str) -> tuple[str, int]:
    """``PORT``, ``:PORT``, ``HOST:PORT`` or ``[V6]:PORT``; the host defaults to 127.0.0.1."""
    host, port = split_host_port(value, "8767, 127.0.0.1:8767 or [::1]:8767")
    return host or DEFAULT_HOST, port


def add_remote_arguments(p: argparse.ArgumentParser, what: str) -> None:
    """``--allow-remote``: the opt-in a Socket.IO listener (``what``) needs off loopback."""
    p.add_argument(ALLOW_REMOTE_FLAG, action="store_true",
                   help=f"let {what} listen on an address that is not loopback (127.0.0.0/8, "
                        "::1): its clients are served without a token, so anyone who reaches "
                        "it is")


def add_ui_token_argument(p: argparse.ArgumentParser) -> None:
    """``--ui-token``: the token the live page (and --metrics) ask for."""
    p.add_argument("--ui-token", metavar="TOKEN", default=os.environ.get(UI_TOKEN_ENV) or None,
                   help=f"the token the live page and --metrics ask for (default ${UI_TOKEN_ENV}; "
                        "off loopback one is made up and printed when none is given)")


def add_secret_name_argument(p: argparse.ArgumentParser) -> None:
    """``--secret-name PATTERN`` (repeatable): the user's own secret names, for every output."""
    p.add_argument("--secret-name", type=_secret_name, action="append", default=[],
                   metavar="PATTERN",
                   help="also treat header, query, cookie and form names matching this regular "
                        "expression (case-insensitive, repeatable) as secrets: their values are "
                        "written as fingerprints")


def use_secret_names(args: argparse.Namespace) -> None:
    """Extend this process's secrets policy by the ``--secret-name`` patterns."""
    add_secret_names(args.secret_name)


def _secret_name(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a regular expression ({exc}); give a name such as x-tenant or a "
            "pattern such as '^pin$'") from None
    return value


def positive_mib(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of MiB")
    return number


def positive_int(value: str) -> int:
    n = int(value)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return n


def positive_float(value: str) -> float:
    n = float(value)
    if n <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return n


def non_negative_float(value: str) -> float:
    n = float(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"{value} is not 0 or a positive number")
    return n


def csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_analysis_arguments(p: argparse.ArgumentParser) -> None:
    """The options that tune the judge, the same for `proxy` and `report`."""
    p.add_argument("--profile", metavar="NAME|FILE",
                   help="an app profile, e.g. claude-mpm (ports, ingest path, listened names)")
    p.add_argument("--ingest-path", action="append", metavar="PATH",
                   help="HTTP path whose POSTs are events going in (repeatable; default "
                        "/api/events)")
    p.add_argument("--rules", metavar="FILE", help="TOML rules for in->out matching and roles")
    p.add_argument("--deadline", type=float, metavar="SECONDS",
                   help="how long an ingested event may take to come out (default 2)")


def analysis_config(args: argparse.Namespace) -> AnalysisConfig:
    """The judge's configuration from :func:`add_analysis_arguments`'s options (ConfigError:
    FILE:LINE and the reason, for a profile or rules file that is wrong)."""
    from sio_sniffer.analysis import AnalysisConfig, load_profile, load_rules

    config = AnalysisConfig(profile=load_profile(args.profile) if args.profile else None,
                            ingest_paths=tuple(args.ingest_path) if args.ingest_path else None,
                            rules=load_rules(args.rules) if args.rules else ())
    if args.deadline is not None:
        config.deadline = args.deadline
    return config
