"""`sio-sniffer proxy` as it runs: the relay here, the observer in a second process.

By default the command runs in two processes: this one relays (byte-level, with a tap that
only frames copies) and a child (:mod:`sio_sniffer.proxy.worker`) parses, decodes, analyses and
writes the log, capture and live views. Forwarding then never shares a process with decoding.
``--single-process`` keeps everything here, as the embedded
:class:`~sio_sniffer.pipeline.sniffer.Sniffer` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import sys

from sio_sniffer.model.addresses import RemoteBindRefused, bind_policy
from sio_sniffer.proxy.config import ObserverConfig, RunConfig
from sio_sniffer.proxy.side import CommandError, ObserverSide, say
from sio_sniffer.support import loops
from sio_sniffer.support.shutdown import stop_event
from sio_sniffer.transport.channel import ChannelWriter, PipeWriter
from sio_sniffer.transport.relay import PortInUseError, Relay, format_addr


class _Worker:
    """The observer process, fed through its stdin. On a pipe of its own it answers "ready" and
    the lines that say where its pages are, or in one sentence why it cannot start."""

    def __init__(self, proc: asyncio.subprocess.Process, notices: list[str], pipe: int,
                 limit: int) -> None:
        self.proc = proc
        self.notices = notices
        self.pipe = PipeWriter(pipe)
        self.channel = ChannelWriter(self.pipe.write, self.pipe.buffered, limit=limit)

    @classmethod
    async def spawn(cls, config: ObserverConfig, loop: str, limit: int) -> _Worker:
        fds: list[int] = []  # every descriptor made here; closed unless handed on
        proc: asyncio.subprocess.Process | None = None
        try:
            ready_r, ready_w = os.pipe()
            fds += (ready_r, ready_w)
            config_r, config_w = os.pipe()
            fds += (config_r, config_w)
            copies_r, copies_w = os.pipe()
            fds += (copies_r, copies_w)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sio_sniffer.proxy.worker", str(ready_w), str(config_r),
                loop, stdin=copies_r, pass_fds=(ready_w, config_r))
            for fd in (ready_w, config_r, copies_r):  # the child's ends
                fds.remove(fd)
                os.close(fd)
            # The typed config, as it is (the child parses no arguments); a thread, because a
            # rules file may make it larger than the pipe holds before the child reads.
            fds.remove(config_w)
            await asyncio.to_thread(_write_and_close, config_w, pickle.dumps(config))
            fds.remove(ready_r)
            with os.fdopen(ready_r, "rb") as ready:
                answer = (await asyncio.to_thread(ready.read)).decode().strip()
            first, *notices = answer.splitlines() or [""]
            if first != "ready":
                await proc.wait()
                raise CommandError(answer or
                                   f"the observer process exited with {proc.returncode}")
            fds.remove(copies_w)
            return cls(proc, notices, copies_w, limit)
        except BaseException:
            if proc is not None and proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            raise
        finally:
            for fd in fds:
                os.close(fd)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    async def finish(self) -> int:
        """No more traffic: close the pipe; the worker works off its backlog and exits."""
        self.channel.flush()
        await self.pipe.close()
        if self.channel.dropped:
            say(f"the observer process fell behind: {self.channel.dropped} bytes of copies "
                 "were not analysed (forwarding was not affected; --observer-buffer sets how "
                 "much may wait)")
        return await self.proc.wait()


def _write_and_close(fd: int, data: bytes) -> None:
    # BrokenPipeError: the child died, and its exit says why
    with os.fdopen(fd, "wb") as pipe, contextlib.suppress(BrokenPipeError):
        pipe.write(data)


async def serve(run: RunConfig) -> int:
    config = run.sniffer
    side: ObserverSide | None = None
    worker: _Worker | None = None
    stop: asyncio.Event | None = None

    def hangup() -> None:
        """SIGHUP: reopen ``--log FILE`` where it is written (here, or the observer process);
        without one it is the terminal hanging up, and the proxy stops as on SIGTERM."""
        if run.observer.log is None:
            if stop is not None:
                stop.set()
        elif side is not None:
            side.reopen_log()
        elif worker is not None:
            worker.signal(signal.SIGHUP)

    loop = asyncio.get_running_loop()
    with contextlib.suppress(AttributeError, NotImplementedError):
        loop.add_signal_handler(signal.SIGHUP, hangup)
    try:
        for host, _ in config.listen:  # the commands checked already; a caller of run() too
            bind_policy(host, "proxy", "opt-in", allow_remote=run.allow_remote)
        if run.single_process:
            side = ObserverSide(run.observer)
            notices = await side.start()
            relay = Relay(config.upstream, config.listen, side.observer.tap,
                          ssl_listen=config.ssl_listen)
            relayed = relay.relayed
            side.sources.relayed = lambda: relayed
            side.sources.relay_up = lambda: relay.serving
        else:
            worker = await _Worker.spawn(run.observer, run.loop, run.observer_buffer)
            notices = worker.notices
            relay = Relay(config.upstream, config.listen, lambda _: None,
                          ssl_listen=config.ssl_listen, tap_factory=worker.channel.tap)
        await relay.start()
    except (CommandError, PortInUseError, ValueError, RemoteBindRefused) as exc:
        say(str(exc))
        if side is not None:
            await side.close()
        if worker is not None:
            await worker.finish()
        return 2
    # The handlers are in place before the first line says the proxy is up: a supervisor that
    # stops it on that line gets a clean exit, not a death by SIGTERM.
    stop = stop_event()
    rooms = side.print_rooms if side is not None else \
        lambda: worker.signal(signal.SIGUSR1) if worker is not None else None
    with contextlib.suppress(AttributeError, NotImplementedError):
        loop.add_signal_handler(signal.SIGUSR1, rooms)
    listening = ", ".join(format_addr(h, p) for h, p in relay.bound)
    say(f"listening on {listening}, upstream {config.upstream} "
         "(Ctrl-C to stop; SIGUSR1 prints the inferred rooms"
         + ("; SIGHUP reopens the log)" if run.observer.log is not None else ")"))
    for host, port in relay.bound:
        exposed = bind_policy(host, "proxy", "opt-in", allow_remote=run.allow_remote).notice(port)
        if exposed is not None:
            say(exposed)
    for notice in notices:
        say(notice)
    await stop.wait()
    await relay.stop()
    if side is not None:
        await side.close()
    if worker is not None and await worker.finish() != 0:
        return 1
    return 0


def run(config: RunConfig) -> int:
    """Relay until SIGINT/SIGTERM; 0, or 2 when it could not start (the reason on stderr)."""
    try:
        return loops.run(lambda: serve(config), config.loop)
    except loops.LoopError as exc:
        say(str(exc))
        return 2
