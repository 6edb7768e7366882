"""Two python-socketio nodes sharing a real redis-server (AsyncRedisManager), a sniffer with
``--cluster`` in front of each: hooks post and clients chat through node A's sniffer, the
dashboards sit on either node. Healthy, nobody is lost wherever the dashboards are; a node that
drops every third event has each drop flagged by node A's sniffer, naming node A."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from sio_sniffer.cluster import ClusterConfig
from sio_sniffer.model import flags as F
from sio_sniffer.pipeline.sniffer import Sniffer
from sio_sniffer.testing import Recorder
from tests.cluster.cluster_peers import Dashboard, Node, RedisServer, nodes, redis_server, until
from tests.rigs import generic, judging

EVENTS = 9
DEADLINE = 1.0


@contextlib.asynccontextmanager
async def cluster(redis: RedisServer, drop_a: int = 0) -> AsyncIterator[
        tuple[list[Node], list[tuple[Sniffer, Recorder]]]]:
    """Nodes A and B, a sniffer with --cluster in front of each, both views on."""
    async with nodes(redis.url, drop_a, 0) as (a, b), \
            judging(a.server.url, generic(DEADLINE),
                    cluster=ClusterConfig(redis.url, "A")) as sniffer_a, \
            judging(b.server.url, generic(DEADLINE),
                    cluster=ClusterConfig(redis.url, "B")) as sniffer_b:
        for _, rec in (sniffer_a, sniffer_b):
            await rec.wait("cluster.state", state="on")
        # Each has heard the other: a loss names who was where.
        for (sniffer, _), peer in ((sniffer_a, "B"), (sniffer_b, "A")):
            nodes_heard = sniffer.analyzer.relay.cluster.nodes
            await until(lambda n=nodes_heard, p=peer: p in n)
        yield [a, b], [sniffer_a, sniffer_b]


async def drive(redis: RedisServer, where: str, drop_a: int = 0) -> tuple[
        list[Node], Recorder, Recorder, list[Dashboard]]:
    """Hooks and a chatting client on node A, dashboards ``where`` ("B": both on node B,
    "AB": one on each, "A": both on node A); returns once every event is judged."""
    async with cluster(redis, drop_a) as ((a, b), ((sa, rec_a), (sb, rec_b))):
        urls = {"A": sa.url, "B": sb.url}
        dashboards = [await Dashboard().connect(urls[n]) for n in (where * 2)[:2]]
        chatter = await Dashboard().connect(sa.url, join=False)
        # Every node's manager listens (python-socketio subscribes once a client connects),
        # and both sniffers: 2 + 2 subscribers.
        await until(lambda: redis.subscribers("socketio"), 10)
        await until(lambda: _all_subscribed(redis, where), 10)
        async with aiohttp.ClientSession() as http:
            for i in range(EVENTS):
                async with http.post(f"{sa.url}/api/events",
                                     json={"hook": "pre_tool", "session_id": f"sess-{i}"}) as r:
                    assert r.status == 200
                await chatter.client.emit("chat", {"text": f"message number {i}"})
        delivered = 2 * (EVENTS - (EVENTS // drop_a if drop_a else 0))
        await until(lambda: all(len(d.got) >= delivered for d in dashboards))
        analyzer = sa.analyzer
        # Judged: matched, or past the deadline (each drop a flag).
        await until(lambda: analyzer.correlator.waiting() == 0 and
                    analyzer.relay.matched + analyzer.flag.counts.get(F.LOST, 0) >= 2 * EVENTS)
        for client in (*dashboards, chatter):
            await client.client.disconnect()
    return [a, b], rec_a, rec_b, dashboards


async def _all_subscribed(redis: RedisServer, where: str) -> bool:
    # node A's manager always (the chatter is there), node B's once a dashboard is there
    return await redis.subscribers("socketio") >= 2 + (1 + ("B" in where))


def _lost(rec: Recorder) -> list[Any]:
    return rec.flags(F.LOST)


@pytest.mark.parametrize("where", ["B", "AB", "A"])
async def test_a_healthy_cluster_loses_nothing_wherever_the_dashboards_are(where: str) -> None:
    async with redis_server() as redis:
        _, rec_a, rec_b, dashboards = await drive(redis, where)
    assert all(len(d.got) == 2 * EVENTS for d in dashboards)
    assert _lost(rec_a) == [] and _lost(rec_b) == []
    summary = rec_a.of("summary")[-1]
    assert summary.get("expectations")["matched"] == 2 * EVENTS
    elsewhere = summary.get("cluster")["delivered_elsewhere"]
    # Closed by node B's sniffer exactly when no dashboard was here.
    assert elsewhere == ({"B": 2 * EVENTS} if where == "B" else {})
    assert summary.get("cluster")["nodes"].get("B") is not None


@pytest.mark.parametrize("where", ["B", "AB"])
async def test_every_third_event_dropped_by_node_a_is_flagged_by_its_sniffer(where: str) -> None:
    async with redis_server() as redis:
        (a, _), rec_a, rec_b, _ = await drive(redis, where, drop_a=3)
    assert _lost(rec_b) == []
    lost = _lost(rec_a)
    assert len(a.dropped) == 2 * (EVENTS // 3) == len(lost)
    if where == "B":
        # Nobody here could have received them: the cluster view says which node failed.
        assert {f.get("code") for f in lost} == {F.LOST_NODE_NOT_EMITTED}
        assert all("node A never emitted it" in f.get("cause") for f in lost)
        assert all("node B had 1 client(s) on /" in f.get("cause") or
                   "node B had 2 client(s) on /" in f.get("cause") for f in lost)
    else:
        # A dashboard here got the others: this node's server skipped these.
        assert {f.get("code") for f in lost} == {F.LOST_NOT_EMITTED}
    # Three hook POSTs and three chat events, each flagged once.
    assert sorted(str(f.get("path") or f.name) for f in lost) == \
        ["/api/events"] * 3 + ["chat"] * 3


async def test_redis_stopped_and_restarted_under_the_cluster_touches_no_traffic() -> None:
    """Redis goes away under a running cluster: the dashboards keep getting what their own node
    emits through the sniffers, each sniffer says once that the view is off and once that it is
    back, and after that the cluster is judged as one again."""
    said: dict[str, list[str]] = {"A": [], "B": []}
    async with redis_server() as redis, nodes(redis.url, 0, 0) as (a, b), \
            judging(a.server.url, generic(DEADLINE), cluster=ClusterConfig(redis.url, "A"),
                    report=said["A"].append) as (sa, rec_a), \
            judging(b.server.url, generic(DEADLINE), cluster=ClusterConfig(redis.url, "B"),
                    report=said["B"].append) as (sb, rec_b):
        for rec in (rec_a, rec_b):
            await rec.wait("cluster.state", state="on")
        here, there = await Dashboard().connect(sa.url), await Dashboard().connect(sb.url)
        await until(lambda: _all_subscribed(redis, "AB"))

        async def post(http: aiohttp.ClientSession, i: int) -> None:
            async with http.post(f"{sa.url}/api/events", json={"session_id": f"s-{i}"}) as r:
                assert r.status == 200

        async with aiohttp.ClientSession() as http:
            await post(http, 0)
            await until(lambda: len(there.got) == 1)
            redis.stop()
            for rec in (rec_a, rec_b):
                await rec.wait("cluster.state", state="off")
            for i in range(1, 4):
                await post(http, i)
            # Traffic through the sniffers is untouched: node A's own dashboard gets them all.
            await until(lambda: len(here.got) == 4)
            await redis.start()
            for rec in (rec_a, rec_b):
                await rec.wait_count("cluster.state", 3)  # on, off, on again
            await until(lambda: _all_subscribed(redis, "AB"))
            before = sa.analyzer.relay.matched
            await post(http, 4)
            await until(lambda: len(there.got) == 2 and len(here.got) == 5)
            await until(lambda: sa.analyzer.relay.matched == before + 1)
        for client in (here, there):
            await client.client.disconnect()
    for node in ("A", "B"):
        off = [m for m in said[node] if "cluster view is off" in m]
        back = [m for m in said[node] if "cluster view is back" in m]
        assert len(off) == 1 and len(back) == 1, said[node]
        assert redis.url in off[0] and "start Redis" in off[0]
    assert _lost(rec_a) == [] and _lost(rec_b) == []
    assert [r.get("state") for r in rec_a.of("cluster.state")] == ["on", "off", "on"]
