"""`sio-sniffer report`: its arguments and its output.

The work is done by :mod:`sio_sniffer.report`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import orjson

from sio_sniffer.capture import (
    CaptureError,
)
from sio_sniffer.commands import options
from sio_sniffer.commands.options import parse_ui_address
from sio_sniffer.report import (
    build_report,
    open_inputs,
    render_html,
)
from sio_sniffer.support.files import open_private


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="capture files (sio-sniffer proxy --capture) or browser HAR files; "
                        "several are merged by time")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    options.add_secret_name_argument(parser)
    parser.add_argument("--html", metavar="OUT", help="write a self-contained HTML timeline")
    parser.add_argument("--path", default="/socket.io/", help="the Socket.IO path (default "
                        "/socket.io/)")
    parser.add_argument("--no-analysis", action="store_true",
                        help="decode only: no flags, broadcasts or rooms")
    options.add_analysis_arguments(parser)
    parser.add_argument("--clock-offset", action="append", default=[], type=_clock_offset,
                        metavar="FILE=SECONDS",
                        help="add SECONDS to every stamp of FILE (repeatable) instead of the "
                             "offset estimated from the events the captures share")
    parser.add_argument("--clock-tolerance", type=float, default=0.05, metavar="SECONDS",
                        help="with several captures, a delivery stamped up to this long before "
                             "its ingest still answers it (default 0.05: what is left of the "
                             "hosts' clock difference after correcting it)")
    parser.add_argument("--ui", type=parse_ui_address, metavar="[HOST:]PORT",
                        help="show the files in the live page served here until Ctrl-C "
                             "(any host but loopback asks for a token: --ui-token, else one "
                             "printed at start)")
    options.add_ui_token_argument(parser)


def _clock_offset(value: str) -> tuple[str, float]:
    name, sep, seconds = value.rpartition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"wants FILE=SECONDS (such as b.jsonl=-0.05), not {value!r}") from None


def run(args: argparse.Namespace) -> int:
    options.use_secret_names(args)
    try:
        inputs = open_inputs(args.files)
        inputs.align(args.path, dict(args.clock_offset))
        analysis = None if args.no_analysis else options.analysis_config(args)
        if analysis is not None and len(args.files) > 1:
            analysis = dataclasses.replace(analysis, causality_tolerance=args.clock_tolerance)
        if analysis is not None and inputs.cluster_node and not analysis.cluster_node:
            # A --cluster capture: judged as that node, with the cluster facts it kept.
            analysis = dataclasses.replace(analysis, cluster_node=inputs.cluster_node)
        ui = None
        if args.ui is not None:
            from sio_sniffer.web.live.offline import offline_ui

            ui = offline_ui(args.ui, args.files, token=args.ui_token)
        report = build_report(inputs, path=args.path, analysis=analysis,
                              sink=ui.sink if ui is not None else None)
    except (CaptureError, OSError, ValueError) as exc:
        # ValueError covers the analysis ConfigError (FILE:LINE: reason) of a bad rules file.
        print(f"sio-sniffer report: {exc}", file=sys.stderr)
        return 2
    for problem in report.problems:
        print(f"sio-sniffer report: {problem}", file=sys.stderr)
    if ui is not None:
        from sio_sniffer.web.live.offline import serve

        return serve(ui, 1 if report.problems else 0)
    if args.html:
        with open_private(args.html) as html:
            html.write(render_html(report).encode())
        print(f"sio-sniffer report: wrote {args.html}", file=sys.stderr)
    if args.json:
        print(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2, default=repr).decode())
    elif not args.html:
        print(report.text())
    return 1 if report.problems else 0

