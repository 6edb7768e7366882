"""The observer process of `sio-sniffer proxy`: frames of copied traffic in on stdin; parsing,
decoding, analysis, log, capture and live pages here.

Started by the proxy command with two file descriptors: one it reads its typed
:class:`~sio_sniffer.proxy.config.ObserverConfig` from (the command line is parsed once, in the
relay process), one on which it answers "ready" (or, in one sentence, why it cannot start). It
runs at a lower CPU priority than the relay: under load, forwarding and the peers come first and
the records follow. It ignores SIGINT, SIGTERM and SIGHUP (a terminal's Ctrl-C or hang-up reaches
the whole process group): it ends when the relay closes the pipe, after working off everything it
was sent, so the log and capture end with the analysis' summary even when the relay was
interrupted. The SIGHUP the relay passes on reopens ``--log FILE``, which is written here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import ssl
import sys

from sio_sniffer.proxy.config import ObserverConfig
from sio_sniffer.proxy.side import CommandError, ObserverSide
from sio_sniffer.support import loops
from sio_sniffer.transport.channel import ChannelReader

NICENESS = 10
# The copies queued in the observer before it stops reading the pipe (the relay then buffers,
# and past its limit drops copies, never traffic).
HIGH_BACKLOG = 50_000
LOW_BACKLOG = 5_000
BODY_LIMIT = 16 * 1024 * 1024


class _PipeReader(asyncio.Protocol):
    def __init__(self, side: ObserverSide) -> None:
        self.side = side
        self.reader = ChannelReader(side.observer.tap, BODY_LIMIT)
        self.done = asyncio.get_running_loop().create_future()
        reader = self.reader
        side.sources.relayed = lambda: reader.relayed
        side.sources.dropped = lambda: reader.dropped
        # the relay closes the pipe when it stops (or dies)
        side.sources.relay_up = lambda: not self.done.done()
        self.transport: asyncio.ReadTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        if self.side.observer.backlog > HIGH_BACKLOG and self.transport is not None:
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(0.01, self._resume_when_low)

    def _resume_when_low(self) -> None:
        if self.side.observer.backlog > LOW_BACKLOG:
            asyncio.get_running_loop().call_later(0.01, self._resume_when_low)
        elif self.transport is not None:
            self.transport.resume_reading()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _run(config: ObserverConfig, ready_fd: int) -> int:
    loop = asyncio.get_running_loop()
    with os.fdopen(ready_fd, "wb") as ready:
        try:
            side = ObserverSide(config)
            notices = await side.start()
        except (CommandError, OSError, ssl.SSLError) as exc:
            ready.write(str(exc).encode())
            return 2
        # before "ready": from then on the relay may pass these on
        with contextlib.suppress(AttributeError, NotImplementedError):
            loop.add_signal_handler(signal.SIGUSR1, side.print_rooms)
            if config.log is not None:
                loop.add_signal_handler(signal.SIGHUP, side.reopen_log)
        ready.write("\n".join(["ready", *notices]).encode())
    _, protocol = await loop.connect_read_pipe(lambda: _PipeReader(side), sys.stdin.buffer)
    await protocol.done
    await side.close()
    return 0


def main() -> int:
    ready_fd, config_fd, loop = sys.argv[1:]
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    with os.fdopen(int(config_fd), "rb") as pipe:
        config: ObserverConfig = pickle.load(pipe)
    # the relay process already checked that the loop it names is installed
    return loops.run(lambda: _run(config, int(ready_fd)), loop)


if __name__ == "__main__":
    raise SystemExit(main())
