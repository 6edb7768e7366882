"""Codec throughput: typical ~200-byte text EVENT messages through ``SessionDecoder.websocket``,
against python-socketio's own decoder (engineio ``Packet`` + socketio ``Packet``, what a
python-socketio server runs per WebSocket message) measured in the same run.

    PYTHONPATH=. python3 examples/bench_codec.py [--packets N] [--rounds R]

Prints packets per second for each and the ratio (ours / python-socketio). The machine is shared
and noisy, so each figure is the best of R rounds and only the ratio is meant to be compared.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import engineio.packet
import socketio.packet

from sio_sniffer.codec import SessionDecoder, SioItem


def typical_message(seq: int) -> bytes:
    """A ~200-byte chat-like event, as a server broadcasts it."""
    body = (
        '42["chat message",{"user":"alice","room":"general","seq":' + str(seq) + ","
        '"text":"hello there, this is a fairly typical message body of some length",'
        '"ts":1712345678901,"meta":{"client":"web","version":3,"tags":["a","b"]}}]'
    )
    return body.encode()


def best_rate(run: Callable[[], None], count: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return count / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()
    frames = [typical_message(i) for i in range(1000)]
    texts = [f.decode() for f in frames]
    reps = max(1, opts.packets // len(frames))
    count = reps * len(frames)

    decoder = SessionDecoder(eio=4)
    check = decoder.websocket("out", frames[0], True)
    assert isinstance(check[0], SioItem) and check[0].packet.name == "chat message"

    def ours() -> None:
        ws = decoder.websocket
        for _ in range(reps):
            for frame in frames:
                ws("out", frame, True)

    def python_socketio() -> None:
        eio_packet = engineio.packet.Packet
        sio_packet = socketio.packet.Packet
        for _ in range(reps):
            for text in texts:
                sio_packet(encoded_packet=eio_packet(encoded_packet=text).data)

    rate_ours = best_rate(ours, count, opts.rounds)
    rate_base = best_rate(python_socketio, count, opts.rounds)
    print(f"message size: {len(frames[0])} bytes, {count} packets per round, "
          f"best of {opts.rounds} rounds")
    print(f"SessionDecoder.websocket:            {rate_ours:>12,.0f} packets/s")
    print(f"python-socketio Packet (baseline):   {rate_base:>12,.0f} packets/s")
    print(f"ratio ours / python-socketio:        {rate_ours / rate_base:>12.2f}")


if __name__ == "__main__":
    main()
