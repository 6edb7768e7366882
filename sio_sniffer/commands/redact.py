"""`sio-sniffer redact`: its arguments and its output.

The work is done by :mod:`sio_sniffer.capture.redact`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from sio_sniffer.capture import (
    CaptureError,
)
from sio_sniffer.capture.redact import (
    default_output,
    find_leftovers,
    redact_file,
)
from sio_sniffer.commands import options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="a capture file written by `proxy --capture`")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="where the redacted copy goes (default FILE.redacted.jsonl)")
    parser.add_argument("--in-place", action="store_true",
                        help="replace FILE with its redacted copy")
    parser.add_argument("--payloads", action="store_true",
                        help="also replace event arguments and HTTP bodies by fingerprints")
    options.add_secret_name_argument(parser)


def run(args: argparse.Namespace) -> int:
    options.use_secret_names(args)
    source = Path(args.file)
    if args.in_place and args.output:
        print("sio-sniffer redact: give either --in-place or -o OUT, not both", file=sys.stderr)
        return 2
    out = source if args.in_place else Path(args.output) if args.output else \
        default_output(source)
    if not args.in_place and out.exists() and source.exists() and out.samefile(source):
        print(f"sio-sniffer redact: {out} is the input; pass --in-place to replace it",
              file=sys.stderr)
        return 2
    # The copy is written next to its destination and moved over it only when complete, so an
    # error (or --in-place) never leaves a half-written file where the user expects the result.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        bad = redact_file(source, tmp, payloads=args.payloads,
                          report=lambda m: print(m, file=sys.stderr))
        left = find_leftovers(tmp)
        os.replace(tmp, out)
    except (CaptureError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        print(f"sio-sniffer redact: {exc}", file=sys.stderr)
        return 2
    print(f"sio-sniffer redact: wrote {out}", file=sys.stderr)
    # The copy is checked, not trusted: anything secret-looking the policy missed is named (by
    # name and line, never by value) so the user does not share it unawares.
    if left.in_payloads and not args.payloads:
        print(f"sio-sniffer redact: warning: event payloads still hold what looks like secrets "
              f"({_where(left.in_payloads)}); pass --payloads to fingerprint them too",
              file=sys.stderr)
    problems = {**left.outside_payloads, **(left.in_payloads if args.payloads else {})}
    if problems:
        print(f"sio-sniffer redact: {out} still holds what looks like secrets "
              f"({_where(problems)}): do not share it; name them with --secret-name PATTERN "
              "and redact again", file=sys.stderr)
        return 1
    return 1 if bad else 0


def _where(lines: dict[int, list[str]], most: int = 10) -> str:
    shown = sorted(lines)[:most]
    text = "; ".join(f"line {n}: {', '.join(lines[n])}" for n in shown)
    return text + (f"; and {len(lines) - most} more line(s)" if len(lines) > most else "")
