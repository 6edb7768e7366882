"""A healthy-traffic soak: the generic judge (no profile, no rules) raises no false flag.

One Node socket.io server (soak_server.js, which also serves a plain engine.io app on
/engine.io/) and Node clients (soak_client.js) behind two real sniffers, one per path, with 1 s
deadlines. In one run of a few seconds the clients go through what healthy apps do: rooms,
broadcasts, acks, echoes to the sender, retried acks (``retries`` and
``timeout().emitWithAck``), reconnects after a server-side and a client-side transport close,
connection state recovery replaying missed events, a namespace whose middleware refuses bad
tokens, a plain Engine.IO session across its upgrade, a client closing mid-probe and polling
clients closing while their GET is pending. The only flags allowed are the deliberate refusals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sio_sniffer import model
from sio_sniffer.model import flags as F
from sio_sniffer.testing import Recorder
from tests.rigs import NODE_ENV, generic, judging, node_server

HERE = Path(__file__).resolve().parent
TIMEOUT = 10.0
DEADLINE = 1.0


@contextlib.asynccontextmanager
async def soak_client(**options: Any) -> AsyncIterator[dict[str, Any]]:
    """Runs soak_client.js to its report; its lasting clients close on the way out."""
    process = await asyncio.create_subprocess_exec(
        "node", str(HERE / "soak_client.js"), json.dumps(options), env=NODE_ENV,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert process.stdin is not None and process.stdout is not None
    try:
        line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT)
        assert line, "the soak client exited without reporting"
        report: dict[str, Any] = json.loads(line)
        assert report["event"] == "done", report
        yield report
        process.stdin.close()
        await asyncio.wait_for(process.wait(), TIMEOUT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def flags(rec: Recorder) -> list[tuple[Any, Any, Any, Any]]:
    return [(r.get("flag"), r.get("code"), r.nsp, r.get("cause")) for r in rec.of(model.FLAG)]


async def past_deadline(rec: Recorder, since: float) -> None:
    """Until a record (heartbeats come every 200 ms) is stamped past ``since`` + the deadline:
    everything the traffic before ``since`` opened has been judged."""
    await rec.wait_for(lambda r: r.ts > since + DEADLINE + 0.1, timeout=TIMEOUT)


async def test_healthy_soak_raises_only_the_deliberate_refusals() -> None:
    """Every scenario did what a healthy app expects, and the judge flagged only /admin's
    refusals; nothing was left unjudged at the end."""
    async with node_server(HERE / "soak_server.js") as upstream, \
            judging(upstream, generic(DEADLINE), path="/socket.io/") as (sio, rec), \
            judging(upstream, generic(DEADLINE), path="/engine.io/") as (eio, eio_rec), \
            soak_client(url=sio.url, eio=eio.url) as report:
        quiet = time.time()  # the clients are done: only heartbeats from here on
        await past_deadline(rec, quiet)
        await past_deadline(eio_rec, quiet)
    assert report["ordinary"] == {"echo": {"n": 1}, "answer": {"answer": 42},
                                  "news": [{"hi": 1}, {"hi": 1}]}
    assert report["retries"] == {"ack": {"ok": True}, "answer": {"ok": True}}
    assert report["reconnects"] == ["transport close", "forced close"]
    assert report["recovery"] == {"recovered": True, "missed": [1, 2]}
    assert report["namespaces"] == {"answer": {"admin": 7},
                                    "refused": ["not authorized", "not authorized"]}
    assert report["eio"] == {"transport": "websocket",
                             "echoes": ["welcome", "hello", [0, 1, 2, 255]]}
    assert report["probe"] == "forced close"
    assert report["poll"] == ["io client disconnect", "forced close"]

    refusals = rec.of(model.FLAG, flag=F.CONNECT_ERROR)
    assert refusals and all(r.get("code") == F.CONNECT_ERROR_REFUSED and r.nsp == "/admin"
                            and "not authorized" in r.get("cause") for r in refusals)
    assert [f for f in flags(rec) if f[0] != F.CONNECT_ERROR] == []
    assert flags(eio_rec) == []
    assert eio_rec.of(model.EIO_MESSAGE) and eio_rec.of(model.DECODE_ERROR) == []
    summaries = rec.of(model.SUMMARY) + eio_rec.of(model.SUMMARY)
    assert [s.get("expectations")["open_at_exit"] for s in summaries] == [0, 0]
