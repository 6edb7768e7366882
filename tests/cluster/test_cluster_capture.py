"""A --cluster capture holds what the cluster view knew: two python-socketio nodes on a real
redis-server, a sniffer with --cluster and --capture in front of node A, one with --cluster in
front of node B, the dashboards on node B, and node A drops (or emits to a room nobody joined)
one hook event of three. `sio-sniffer report` on node A's capture gives the very lost verdicts
the live sniffer flagged; the same capture stripped of its cluster lines cannot (it says nobody
was connected), which is what the cluster lines are for."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sio_sniffer.cluster import ClusterConfig
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F
from tests.cluster.cluster_peers import DEADLINE, Dashboard, at_least, nodes, redis_server, until
from tests.conftest import free_port
from tests.rigs import generic, judging, log_lines, start_proxy, stop_proxy

HOOKS = 3


async def _post_hooks(url: str, dashboards: list[Dashboard]) -> None:
    """HOOKS hook POSTs into node A's sniffer at ``url``; until node A has relayed all it
    relays (it skips one) to the dashboards on node B."""
    async with aiohttp.ClientSession() as http:
        for i in range(HOOKS):
            async with http.post(f"{url}/api/events",
                                 json={"hook": "stop", "session_id": f"sess-{i}"}) as r:
                assert r.status == 200
    await until(lambda: all(len(d.got) == HOOKS - 1 for d in dashboards))


def _live(capture: Path, misroute: bool) -> list[Record]:
    """Node A's sniffer's lost flags; node A skips (or misroutes) the second hook."""

    async def run() -> list[Record]:
        async with redis_server() as redis, nodes(redis.url, 2, 0, misroute=misroute) as (a, b), \
                judging(a.server.url, generic(DEADLINE), cluster=ClusterConfig(redis.url, "A"),
                        capture=str(capture)) as (sa, rec_a), \
                judging(b.server.url, generic(DEADLINE),
                        cluster=ClusterConfig(redis.url, "B")) as (sb, rec_b):
            for rec in (rec_a, rec_b):
                await rec.wait("cluster.state", state="on")
            view = sa.analyzer.relay.cluster
            await until(lambda: "B" in view.nodes)
            dashboards = [await Dashboard().connect(sb.url) for _ in range(2)]
            # node B's manager and both sniffers subscribed (node A's only publishes)
            await until(lambda: at_least(redis.listeners(), 3))
            await until(lambda: view.nodes.get("B") == {"/": 2})
            await _post_hooks(sa.url, dashboards)
            analyzer = sa.analyzer
            await until(lambda: analyzer.correlator.waiting() == 0 and
                        analyzer.relay.matched + analyzer.flag.counts.get(F.LOST, 0) >= HOOKS)
            for d in dashboards:
                await d.client.disconnect()
        assert rec_b.flags(F.LOST) == []
        return rec_a.flags(F.LOST)

    return asyncio.run(run())


def _report(capture: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "sio_sniffer", "report", str(capture), "--json",
                           "--deadline", str(DEADLINE)], capture_output=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _captured(capture: Path) -> list[dict[str, Any]]:
    """The records a capture holds so far (the observer writes them on its tick)."""
    if not capture.exists():
        return []
    lines = []
    for text in capture.read_text().splitlines()[1:]:
        with contextlib.suppress(ValueError):  # the line being written
            lines.append(json.loads(text))
    return [{**line["r"], **line["r"].get("extra", {})} for line in lines
            if line.get("t") == "record"]


def _verdicts(flags: list[Any]) -> list[tuple[str, str, str]]:
    return sorted((f["code"], f["cause"], f["hint"]) for f in flags)


@pytest.mark.parametrize("misroute", [False, True])
def test_report_on_a_cluster_capture_gives_the_live_verdicts(tmp_path: Path,
                                                             misroute: bool) -> None:
    capture = tmp_path / "a.jsonl"
    live = _live(capture, misroute)
    code = F.LOST_CLUSTER_NOT_DELIVERED if misroute else F.LOST_NODE_NOT_EMITTED
    assert [f.get("code") for f in live] == [code]
    assert "node B had 2 client(s) on /" in live[0].get("cause")
    lines = capture.read_text().splitlines()
    assert json.loads(lines[0])["cluster_node"] == "A"
    kinds = {json.loads(line)["r"]["event"] for line in lines[1:]
             if json.loads(line).get("t") == "record"}
    assert {"cluster.node", "cluster.emit", "cluster.delivered", "cluster.state"} <= kinds

    report = _report(capture)
    lost = [f for f in report["flags"] if f.get("flag") == F.LOST]
    assert _verdicts(lost) == _verdicts([f.to_dict() for f in live])
    assert report["summary"]["cluster"]["node"] == "A"
    assert report["summary"]["cluster"]["delivered_elsewhere"] == {"B": HOOKS - 1}
    assert report["summary"]["expectations"]["matched"] == HOOKS - 1

    # Without the cluster lines the traffic alone cannot say it: nobody was connected here.
    bare = tmp_path / "bare.jsonl"
    head = json.loads(lines[0])
    head.pop("cluster_node")
    kept = [line for line in lines[1:] if not (json.loads(line).get("t") == "record" and
                                               json.loads(line)["r"]["event"].startswith(
                                                   "cluster."))]
    bare.write_text("\n".join([json.dumps(head), *kept]) + "\n")
    alone = [f for f in _report(bare)["flags"] if f.get("flag") == F.LOST]
    assert [f["code"] for f in alone] == [F.LOST_NO_RECEIVERS] * HOOKS


async def test_the_proxy_commands_cluster_capture_reports_as_its_log(tmp_path: Path) -> None:
    """The same through `sio-sniffer proxy --cluster ... --capture` as typed (its observer
    process writes log and capture): node A drops one hook in three, the dashboards are on node
    B; the log's lost verdicts and those of `report` on the capture are the same."""
    capture, log = tmp_path / "a.jsonl", tmp_path / "a.log"
    port = free_port()
    async with redis_server() as redis, nodes(redis.url, 2, 0) as (a, b), \
            judging(b.server.url, generic(DEADLINE),
                    cluster=ClusterConfig(redis.url, "B")) as (sb, rec_b):
        await rec_b.wait("cluster.state", state="on")
        proxy = await start_proxy("--listen", f"127.0.0.1:{port}", "--upstream", a.server.url,
                                  "--cluster", redis.url, "--cluster-node", "A",
                                  "--capture", str(capture), "--log", str(log),
                                  "--deadline", str(DEADLINE))
        try:
            await until(lambda: any(r.get("event") == "cluster.state" and r.get("state") == "on"
                                    for r in _captured(capture)))
            dashboards = [await Dashboard().connect(sb.url) for _ in range(2)]
            await until(lambda: at_least(redis.listeners(), 3))
            await until(lambda: any(r.get("event") == "cluster.node" and r.get("node") == "B"
                                    and r.get("clients") == {"/": 2}
                                    for r in _captured(capture)))
            await _post_hooks(f"http://127.0.0.1:{port}", dashboards)
            await until(lambda: [r for r in log_lines(log) if r.get("flag") == F.LOST])
            for d in dashboards:
                await d.client.disconnect()
        finally:
            assert await stop_proxy(proxy) == 0
    assert rec_b.flags(F.LOST) == []
    live = [r for r in log_lines(log) if r.get("flag") == F.LOST]
    assert [f["code"] for f in live] == [F.LOST_NODE_NOT_EMITTED]
    assert json.loads(capture.read_text().splitlines()[0])["cluster_node"] == "A"
    report = await asyncio.to_thread(_report, capture)
    lost = [f for f in report["flags"] if f.get("flag") == F.LOST]
    assert _verdicts(lost) == _verdicts(live)
