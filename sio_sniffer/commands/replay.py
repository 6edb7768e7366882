"""`sio-sniffer replay`: its arguments and its output.

The work is done by :mod:`sio_sniffer.replay`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

import orjson

from sio_sniffer.capture import CaptureError
from sio_sniffer.commands.options import add_remote_arguments, parse_ui_address
from sio_sniffer.model.addresses import BindPolicy, RemoteBindRefused, bind_policy
from sio_sniffer.replay import (
    Script,
    ServedCapture,
    build_script,
    replay,
)
from sio_sniffer.support.progress import ProgressBar
from sio_sniffer.support.shutdown import stop_event


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="capture file(s) or HAR file(s); several are merged by time")
    parser.add_argument("--target", help="server URL to replay the captured clients against")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0,
                      help="scale the captured timing: 2 = twice as fast (default 1)")
    pace.add_argument("--as-fast-as-possible", action="store_true",
                      help="no waiting between steps (order is kept)")
    parser.add_argument("--auth", help="JSON auth for every client's CONNECT; needed when the "
                        "capture was written without --show-secrets (it then holds only "
                        "fingerprints of the auth)")
    parser.add_argument("--ignore", default="",
                        help="comma-separated payload keys whose values are not compared, on "
                        "top of the values found to be noise")
    parser.add_argument("--strict", action="store_true",
                        help="compare every value: differences that look like noise (times, "
                        "UUIDs, tokens, counters) fail the replay too")
    parser.add_argument("--twice", action="store_true",
                        help="replay twice and take what differs between the two replays for "
                        "noise too")
    parser.add_argument("--path", default="/socket.io/", help="Socket.IO path on the target")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds of quiet after the last step before comparing")
    parser.add_argument("--json", action="store_true", help="print the diff as JSON")
    parser.add_argument("--serve", action="store_true",
                        help="play the captured server side to clients that connect")
    parser.add_argument("--listen", default="127.0.0.1:8765", type=parse_ui_address,
                        help="[HOST:]PORT for --serve (default 127.0.0.1:8765; port 0: any "
                        "free one, printed)")
    add_remote_arguments(parser, "--serve")
    parser.add_argument("--client", help="with --serve: the captured Engine.IO sid to play "
                        "(default: the client that received the most events)")
    parser.epilog = ("Captures written without --show-secrets keep only fingerprints of "
                     "Authorization/Cookie headers and CONNECT auth: pass --auth JSON to replay "
                     "authenticated clients. Exit status: 0 when the replay matches the "
                     "capture, 1 when it differs, 2 when it could not run.")


def run(args: argparse.Namespace) -> int:
    from sio_sniffer.report import open_inputs

    try:
        inputs = open_inputs(args.files)
        script = build_script(inputs, path=args.path)
        problems = inputs.problems
    except (CaptureError, OSError) as exc:
        print(f"sio-sniffer replay: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        print(f"sio-sniffer replay: {problem}", file=sys.stderr)
    auth: Any = None
    if args.auth:
        try:
            auth = orjson.loads(args.auth)
        except orjson.JSONDecodeError as exc:
            print(f"sio-sniffer replay: --auth is not JSON: {exc}", file=sys.stderr)
            return 2
    speed = None if args.as_fast_as_possible else args.speed
    if args.serve:
        try:
            policy = bind_policy(args.listen[0], "replayed server", "opt-in",
                                 allow_remote=args.allow_remote)
        except RemoteBindRefused as exc:
            print(f"sio-sniffer replay: {exc}", file=sys.stderr)
            return 2
        return asyncio.run(_serve(script, args.listen, args.client, speed, policy))
    if not args.target:
        print("sio-sniffer replay: give --target URL (or --serve)", file=sys.stderr)
        return 2
    if not script.clients and not script.steps:
        print("sio-sniffer replay: the capture holds no Socket.IO client or request to replay",
              file=sys.stderr)
        return 2
    if script.needs_auth and auth is None:
        print("sio-sniffer replay: warning: the capture holds only fingerprints of the CONNECT "
              "auth (written without --show-secrets); pass --auth JSON", file=sys.stderr)
    ignore = [k for k in args.ignore.split(",") if k]
    progress = ProgressBar(len(script.steps) * (2 if args.twice else 1))
    result = asyncio.run(replay(script, args.target, speed=speed, auth=auth, ignore=ignore,
                                strict=args.strict, twice=args.twice, path=args.path,
                                settle=args.settle, progress=progress))
    progress.close()
    if args.json:
        print(orjson.dumps(result.to_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(result.text())
    return 0 if result.ok and not problems else 1


async def _serve(script: Script, listen: tuple[str, int], client: str | None,
                 speed: float | None, policy: BindPolicy) -> int:
    try:
        served = ServedCapture(script, client, speed)
    except CaptureError as exc:
        print(f"sio-sniffer replay: {exc}", file=sys.stderr)
        return 2
    await served.start(*listen)
    stop = stop_event()  # before the lines saying it is up: a stop on them exits cleanly
    exposed = policy.notice(served.port)
    if exposed is not None:
        print(f"sio-sniffer replay: {exposed}", file=sys.stderr, flush=True)
    print(f"sio-sniffer replay: serving the captured server side on {served.url}",
          file=sys.stderr, flush=True)
    try:
        await stop.wait()  # Ctrl-C or SIGTERM: stop serving, exit 0 as `serve` does
    finally:
        await served.stop()
    return 0
