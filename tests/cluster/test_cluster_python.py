"""Two python-socketio nodes sharing a real redis-server (AsyncRedisManager), a sniffer with
``--cluster`` in front of each: hooks post and clients chat through node A's sniffer, the
dashboards sit on either node. Healthy, nobody is lost wherever the dashboards are; a node that
drops every third event has each drop flagged by node A's sniffer, naming node A."""

from __future__ import annotations

import aiohttp
import pytest

from sio_sniffer.cluster import ClusterConfig
from sio_sniffer.model import flags as F
from tests.cluster.cluster_peers import (
    DEADLINE,
    EVENTS,
    Dashboard,
    RedisServer,
    Run,
    check_drops,
    check_healthy,
    drive,
    nodes,
    redis_server,
    until,
)
from tests.rigs import generic, judging


async def _run(where: str, drop_a: int = 0, misroute: bool = False) -> Run:
    async with redis_server() as redis, nodes(redis.url, drop_a, 0, misroute=misroute) as (a, b):
        # python-socketio subscribes once a client connects: node A's manager always (the
        # chatter is there), node B's when a dashboard is; and the two sniffers.
        listeners = 2 + 1 + ("B" in where)
        return await drive(redis, (a.server.url, b.server.url), where,
                           EVENTS // drop_a if drop_a else 0, listeners)


@pytest.mark.parametrize("where", ["B", "AB", "A"])
async def test_a_healthy_cluster_loses_nothing_wherever_the_dashboards_are(where: str) -> None:
    check_healthy(await _run(where), where)


@pytest.mark.parametrize("where", ["B", "AB"])
async def test_every_third_event_dropped_by_node_a_is_flagged_by_its_sniffer(where: str) -> None:
    check_drops(await _run(where, drop_a=3), where)


async def test_every_third_event_node_a_emits_to_nobody_is_flagged_as_emitted_not_delivered(
        ) -> None:
    """Node A emits every third event to a room nobody joined: the adapter carries it, so the
    cause is that node A emitted it and no client of the cluster received it."""
    run = await _run("B", drop_a=3, misroute=True)
    assert run.rec_b.flags(F.LOST) == []
    lost = run.rec_a.flags(F.LOST)
    assert len(lost) == 6
    assert {f.get("code") for f in lost} == {F.LOST_CLUSTER_NOT_DELIVERED}
    for flag in lost:
        assert "node A emitted it" in flag.get("cause")
        assert "to room 'nobody'" in flag.get("cause")
        assert "no client on any node received it (node B had 2 client(s) on /)" in \
            flag.get("cause")


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
        await until(lambda: _listening(redis))

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
            await until(lambda: _listening(redis))
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
    assert rec_a.flags(F.LOST) == [] and rec_b.flags(F.LOST) == []
    assert [r.get("state") for r in rec_a.of("cluster.state")] == ["on", "off", "on"]


async def _listening(redis: RedisServer) -> bool:
    """Both nodes' managers (a dashboard on each) and both sniffers are subscribed."""
    return await redis.listeners() >= 4


async def test_a_loss_while_the_view_is_off_says_so() -> None:
    """Redis down, the dashboards all on node B: node A cannot pass its events on, and its
    sniffer says the view was off rather than that node A never emitted them."""
    async with redis_server() as redis, nodes(redis.url, 0, 0) as (a, b), \
            judging(a.server.url, generic(DEADLINE),
                    cluster=ClusterConfig(redis.url, "A")) as (sa, rec_a), \
            judging(b.server.url, generic(DEADLINE),
                    cluster=ClusterConfig(redis.url, "B")) as (sb, _):
        await rec_a.wait("cluster.state", state="on")
        there = await Dashboard().connect(sb.url)
        redis.stop()
        await rec_a.wait("cluster.state", state="off")
        async with aiohttp.ClientSession() as http:
            for i in range(2):
                async with http.post(f"{sa.url}/api/events", json={"session_id": f"s-{i}"}) as r:
                    assert r.status == 200
        lost = await rec_a.wait_count("flag", 2)
        await there.client.disconnect()
    assert there.got == []
    assert [f.get("code") for f in lost] == [F.LOST_CLUSTER_OFF] * 2
    assert all("the cluster view was off (Redis unreachable)" in f.get("cause") for f in lost)
