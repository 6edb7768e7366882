"""Rigs the tests share: a real Sniffer judging in front of an upstream, the server scripts of
the tests (Node or Python, each prints its port once it listens), and `sio-sniffer proxy` as a
user runs it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from sio_sniffer.analysis import AnalysisConfig
from sio_sniffer.capture import CaptureWriter
from sio_sniffer.cluster import ClusterConfig
from sio_sniffer.model import Record
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from sio_sniffer.testing import Recorder
from tests.paths import NODE_MODULES

TIMEOUT = 10.0
NODE_ENV = {**os.environ, "NODE_PATH": str(NODE_MODULES)}


def generic(deadline: float = 1.0) -> AnalysisConfig:
    """Generic mode (no profile, no rules) with every deadline shortened alike."""
    return AnalysisConfig(deadline=deadline, connect_deadline=deadline, ack_deadline=deadline)


@contextlib.asynccontextmanager
async def judging(upstream: str, analysis: AnalysisConfig | None = None, *,
                  path: str = "/socket.io/", cluster: ClusterConfig | None = None,
                  report: Callable[[str], None] | None = None, capture: str | None = None,
                  sinks: Sequence[Callable[[Record], None]] = (),
                  ) -> AsyncIterator[tuple[Sniffer, Recorder]]:
    """A sniffer in front of ``upstream`` (judging as ``analysis`` says, generic mode by
    default; with ``cluster``, a node of that cluster) and the records it made; stopped, with
    its summary written, on the way out. ``report`` hears what it would print; ``capture``
    names a capture file it writes; ``sinks`` hear its records too."""
    rec = Recorder()
    writer = (CaptureWriter(capture, upstream=upstream,
                            cluster_node=cluster.node if cluster is not None else None)
              if capture is not None else None)
    analysis = analysis or generic()
    if cluster is not None:
        analysis = dataclasses.replace(analysis, cluster_node=cluster.node)
    sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=upstream, path=path,
                                  analysis=analysis, cluster=cluster),
                      sinks=[rec, *sinks] if writer is None else [rec, *sinks, writer],
                      tap_sinks=[] if writer is None else [writer.tap],
                      **({"report": report} if report is not None else {}))
    await sniffer.start()
    try:
        yield sniffer, rec
    finally:
        await sniffer.stop()
        if writer is not None:
            writer.close()


@contextlib.asynccontextmanager
async def node_server(script: Path, *args: str) -> AsyncIterator[str]:
    """A Node server script that prints its port on stdout; yields its URL."""
    async with listening("node", str(script), *args) as url:
        yield url


@contextlib.asynccontextmanager
async def listening(*argv: str) -> AsyncIterator[str]:
    """A server process (Node or Python) that prints its port on stdout once it listens;
    yields its URL, and kills it on the way out."""
    process = await asyncio.create_subprocess_exec(
        *argv, env=NODE_ENV, stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT)
        yield f"http://127.0.0.1:{int(line)}"
    finally:
        process.kill()
        await process.wait()


async def start_proxy(*args: str) -> asyncio.subprocess.Process:
    """`sio-sniffer proxy ARGS` in a child process, returned once it says it listens."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "proxy", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    line = await asyncio.wait_for(proc.stderr.readline(), 20)
    assert b"listening on" in line, line
    return proc


async def stop_proxy(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM, as a user's Ctrl-C or a service manager; the exit code."""
    proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(proc.wait(), 20)


async def until(check: Callable[[], Any], timeout: float = 10) -> None:
    """Wait for a file-visible condition (the log is flushed on the sniffer's 100 ms tick)."""
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(poll(), timeout)


def log_lines(path: Path) -> list[dict[str, Any]]:
    """A JSON log file as dicts (an absent file has none)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def until_past(sniffer: Sniffer, rec: Recorder, ts: float) -> None:
    """Until the sniffer has heard traffic stamped after ``ts``: an idle server may send nothing
    for long (claude-mpm's ping interval is 30 s), so ask it for /health now and then (each
    answer is a record the analysis clock moves on, and its timers fire by)."""
    async with aiohttp.ClientSession() as http:
        while not any(r.ts > ts for r in rec.records):
            async with http.get(f"{sniffer.url}/health") as response:
                await response.read()
            with contextlib.suppress(asyncio.TimeoutError):
                await rec.wait_for(lambda r: r.ts > ts, timeout=0.25)
