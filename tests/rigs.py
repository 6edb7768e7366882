"""Rigs the tests share: a real Sniffer judging in front of an upstream, and the server scripts
of the tests (Node or Python), each of which prints its port once it listens."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

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
    writer = CaptureWriter(capture, upstream=upstream) if capture is not None else None
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
