"""Fuzz the sniffer: atheris against the codec and the HTTP/WebSocket tap, random and mutated
traffic against the running proxy.

    python examples/fuzz.py all                  # the full run: 100,000 codec inputs, 20,000
                                                 # tap inputs, 10,000 through the proxy
    python examples/fuzz.py codec -runs=5000     # one atheris target (libFuzzer flags)
    python examples/fuzz.py tap -runs=5000
    python examples/fuzz.py proxy --runs 500     # through a running Sniffer

A codec target finding is any exception other than the documented ``CodecError``; a tap finding
is any exception at all (the tap and the pipeline must never raise). Through the proxy every
input must reach the upstream byte for byte, the upstream's answer must come back, and the
sniffer must not report a failed consumer. ``all`` prints one JSON line of figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SEEDS = [
    b"0{\"sid\":\"abc\",\"upgrades\":[\"websocket\"],\"pingInterval\":25000}",
    b"40", b"40/admin,{\"token\":\"x\"}", b"42[\"ev\",1,{\"a\":[true,null]}]",
    b"421[\"ev\"]", b"431[\"ok\"]", b"451-[\"up\",{\"_placeholder\":true,\"num\":0}]",
    b"44{\"message\":\"no\"}", b"2", b"3probe", b"5", b"6", b"1",
    b"bAQID", b"42[\"a\"]\x1e42[\"b\"]\x1e2", b"12:42[\"hello\"]1:2",
    b"\x82\xa4type\x02\xa4data\x91\xa2ev",
]


def _codec_target() -> Any:
    import atheris

    with atheris.instrument_imports():
        from sio_sniffer.codec.engineio import decode_eio_packet, decode_polling_payload
        from sio_sniffer.codec.errors import CodecError
        from sio_sniffer.codec.socketio import SioDecoder
        from sio_sniffer.codec.stream import SessionDecoder

    def one(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        choice = fdp.ConsumeIntInRange(0, 7)
        eio = 3 if choice & 1 else 4
        rest = fdp.ConsumeBytes(fdp.remaining_bytes())
        text = rest.decode("utf-8", "replace")
        with contextlib.suppress(CodecError):
            decode_eio_packet(text, eio)
        with contextlib.suppress(CodecError):
            decode_eio_packet(rest, eio)
        decode_polling_payload(rest, eio, "application/octet-stream" if choice & 2 else None)
        decoder = SioDecoder(msgpack=None if choice & 4 else False)
        decoder.feed(text)
        decoder.feed(rest)
        session = SessionDecoder(eio=eio)
        session.polling("out", rest)
        session.websocket("in", rest, text=bool(choice & 2))
        session.websocket("in", rest, text=False)

    return one


_UPGRADE = (b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
_SWITCHED = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")
_SWITCHED_DEFLATE = _SWITCHED[:-2] + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"


def _tap_target() -> Any:
    import atheris

    with atheris.instrument_imports():
        from sio_sniffer.pipeline.decode import Pipeline, PipelineConfig
        from sio_sniffer.transport.tap.connection import ConnectionTap

    def one(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        mode = fdp.ConsumeIntInRange(0, 3)
        pipeline = Pipeline(PipelineConfig(), lambda record: None)
        tap = ConnectionTap("c1", pipeline.feed, 1 << 20, time.time)
        if mode:
            tap.data("in", _UPGRADE)
            tap.data("out", _SWITCHED_DEFLATE if mode == 2 else _SWITCHED)
        while fdp.remaining_bytes():
            chunk = fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 64))
            tap.data("in" if fdp.ConsumeBool() else "out", chunk)
        tap.eof("in")
        tap.eof("out")

    return one


def run_atheris(target: str, argv: list[str]) -> None:
    import atheris

    one = _codec_target() if target == "codec" else _tap_target()
    corpus = Path(os.environ.get("FUZZ_CORPUS", "/tmp/sio-sniffer-fuzz")) / target
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed{i}").write_bytes(bytes([i % 8]) + seed)
    atheris.Setup([sys.argv[0], *argv, str(corpus)], one)
    atheris.Fuzz()


def _mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(0, 4)):
        op = rng.randrange(4)
        pos = rng.randint(0, len(buf))
        if op == 0 and buf:
            buf[min(pos, len(buf) - 1)] ^= rng.randint(1, 255)
        elif op == 1:
            del buf[pos:pos + rng.randint(1, 16)]
        elif op == 2:
            buf[pos:pos] = rng.randbytes(rng.randint(1, 8))
        else:
            buf[pos:pos] = rng.choice(SEEDS)
    return bytes(buf)


def run_proxy(runs: int, seed: int) -> dict[str, Any]:
    from tests.reliability.fuzz_harness import FuzzProxy
    from tests.reliability.rel_peers import ws_frame

    rng = random.Random(seed)
    harness = FuzzProxy()
    harness.start()
    counts = {"polling": 0, "websocket": 0, "raw_http": 0, "decode_errors": 0}
    started = time.perf_counter()
    try:
        for i in range(runs):
            kind = ("polling", "websocket", "raw_http")[i % 3]
            counts[kind] += 1
            if kind == "polling":
                body = b"\x1e".join(_mutate(rng, rng.choice(SEEDS))
                                    for _ in range(rng.randint(1, 3)))
                data = (b"POST /socket.io/?EIO=4&transport=polling&sid=f HTTP/1.1\r\nHost: x\r\n"
                        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                probe = harness.probe(data, chunk=rng.choice([0, 0, 3]))
                ok = probe.upstream_got == probe.sent and \
                    probe.client_got == harness.upstream.reply
            elif kind == "websocket":
                frames = b"".join(
                    ws_frame(rng.choice([1, 2, 1, 2, 0, 3, 8, 9, 10, 15]),
                             _mutate(rng, rng.choice(SEEDS)), fin=rng.random() > 0.1,
                             mask=rng.random() > 0.05, rsv=rng.choice([0, 0, 0, 4]))
                    for _ in range(rng.randint(1, 4)))
                reply = _mutate(rng, rng.choice(SEEDS))
                probe = harness.probe(_mutate(rng, frames) if rng.random() < 0.2 else frames,
                                      upgrade="/socket.io/?EIO=4&transport=websocket",
                                      reply=reply)
                ok = probe.upstream_got == probe.sent and probe.client_got.endswith(reply)
            else:
                data = _mutate(rng, _UPGRADE if rng.random() < 0.5 else
                               b"POST /api/events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                               b"5\r\nhello\r\n0\r\n\r\n")
                probe = harness.probe(data)
                ok = probe.upstream_got == data
            counts["decode_errors"] += len(probe.decode_errors())
            if not ok or not harness.alive():
                raise SystemExit(f"proxy finding at input {i} (seed {seed}): "
                                 f"{harness.problems or 'bytes differ'}")
    finally:
        harness.stop()
    return {"runs": runs, **counts, "seconds": round(time.perf_counter() - started, 1)}


def _atheris_child(target: str, runs: int) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, target, f"-runs={runs}"],
                          capture_output=True, text=True, check=False)
    m = re.search(r"Done (\d+) runs in (\d+) second", done.stderr)
    if done.returncode != 0 or m is None:
        raise SystemExit(f"{target}: atheris finding or failure:\n{done.stderr[-4000:]}")
    cov = re.findall(r"cov: (\d+)", done.stderr)
    return {"runs": int(m.group(1)), "coverage_edges": int(cov[-1]) if cov else None,
            "seconds": round(time.perf_counter() - started, 1)}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in ("codec", "tap"):
        run_atheris(sys.argv[1], sys.argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("all", "proxy"))
    parser.add_argument("--runs", type=int, default=500, help="proxy inputs (mode proxy)")
    parser.add_argument("--codec-runs", type=int, default=100_000)
    parser.add_argument("--tap-runs", type=int, default=20_000)
    parser.add_argument("--proxy-runs", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.mode == "proxy":
        print(json.dumps({"proxy": run_proxy(args.runs, args.seed)}))
        return 0
    figures = {"codec": _atheris_child("codec", args.codec_runs),
               "tap": _atheris_child("tap", args.tap_runs),
               "proxy": run_proxy(args.proxy_runs, args.seed)}
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
