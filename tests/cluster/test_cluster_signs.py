"""Without --cluster: a sniffer in front of node A of a real two-node cluster (python-socketio
on a real redis-server), the dashboards on node B. Behind a load balancer (its sticky-session
cookie on the answers) a lost hook event says the receivers may be on another node and names
--cluster. Without the cookie, hooks answered 200 while no client ever connected here are what a
cluster relaying elsewhere looks like, and also what one server with no dashboard open looks
like: the loss stays "no client was connected" (no_receivers) and only its hint adds --cluster
as a possibility; once a client has connected through the sniffer, it is plain no_receivers."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from sio_sniffer.model import flags as F
from tests.cluster.cluster_peers import Dashboard, nodes, redis_server, until
from tests.cluster.test_cluster_streams import SERVER
from tests.rigs import generic, judging, node_server, until_past

OPEN_IT = "no dashboard was listening: open it (pointed at this proxy's port)"
MAYBE = ("or, if this server is one node of a cluster, the receivers may be on another node: "
         "put a sniffer in front of every node with --cluster redis://HOST:PORT")


@pytest.mark.parametrize("sticky", ["AWSALB", None])
async def test_no_receivers_here_behind_a_sticky_balancer_points_at_another_node(
        sticky: str | None) -> None:
    async with redis_server() as redis, nodes(redis.url, 0, 0, sticky=sticky) as (a, b), \
            judging(a.server.url, generic(0.5)) as (sniffer, rec):
        dashboard = await Dashboard().connect(b.server.url)
        await until(lambda: redis.subscribers("socketio"))
        async with aiohttp.ClientSession() as http, \
                http.post(f"{sniffer.url}/api/events", json={"session_id": "s-1"}) as r:
            assert r.status == 200
        await until(lambda: dashboard.got)  # delivered, on the other node
        flag = await rec.wait_flag(F.LOST)
        await dashboard.client.disconnect()
    if sticky:
        assert flag.get("code") == F.LOST_OTHER_NODE
        assert "sticky-session cookie AWSALB" in flag.get("cause")
        assert "the server answered the POST with 200" in flag.get("cause")
        assert "--cluster redis://HOST:PORT" in flag.get("hint")
    else:
        # Said as a possibility, not claimed: the code and the first advice stay.
        assert flag.get("code") == F.LOST_NO_RECEIVERS
        assert flag.get("cause").endswith(": no client was connected; no Socket.IO client has "
                                          "connected through this sniffer at all, while the "
                                          "server answered the POST with 200")
        assert flag.get("hint").startswith(OPEN_IT) and MAYBE in flag.get("hint")
        assert flag.get("maybe_other_node") is True


async def test_a_single_node_without_dashboard_is_no_receivers() -> None:
    """One node, nobody else: no client ever here gets the same words as the cluster above (the
    sniffer cannot tell them apart); after a dashboard came and went, plain no_receivers."""
    async with redis_server() as redis, nodes(redis.url, 0) as (a,), \
            judging(a.server.url, generic(0.5)) as (sniffer, rec), aiohttp.ClientSession() as http:
        async with http.post(f"{sniffer.url}/api/events", json={"session_id": "s-1"}) as r:
            assert r.status == 200
        never = await rec.wait_flag(F.LOST)
        dashboard = await Dashboard().connect(sniffer.url)
        await dashboard.client.disconnect()
        await asyncio.sleep(0.8)  # past the deadline: no reconnect in the window
        async with http.post(f"{sniffer.url}/api/events", json={"session_id": "s-2"}) as r:
            assert r.status == 200
        await rec.wait_count("flag", 2)
    after = rec.flags(F.LOST)[1]
    for flag in (never, after):
        assert flag.get("code") == F.LOST_NO_RECEIVERS
        assert ": no client was connected" in flag.get("cause")
        assert flag.get("hint").startswith(OPEN_IT)
    assert MAYBE in never.get("hint")
    assert after.get("cause").endswith(": no client was connected")
    assert MAYBE not in after.get("hint") and after.get("maybe_other_node") is None


@pytest.mark.parametrize("adapter", ["streams", "memory"])
async def test_a_cluster_adapters_recovery_offsets_point_at_another_node(adapter: str) -> None:
    """Node servers with connectionStateRecovery. On @socket.io/redis-streams-adapter each
    broadcast ends with its Redis stream offset: once a dashboard here saw a few, a hook lost
    after it left (the dashboard now on node B) is put down to another node, naming --cluster.
    A single server's own offsets (the in-memory adapter's random ids) are no such sign."""
    hooks = 4
    async with redis_server() as redis, \
            node_server(SERVER, redis.url, "0", adapter, "csr") as a, \
            node_server(SERVER, redis.url, "0", adapter, "csr") as b, \
            judging(a, generic(0.3)) as (sniffer, rec):
        here = await Dashboard().connect(sniffer.url)
        async with aiohttp.ClientSession() as http:
            for i in range(hooks):
                async with http.post(f"{sniffer.url}/api/events",
                                     json={"session_id": f"seen-{i}"}) as r:
                    assert r.status == 200
            await until(lambda: len(here.got) == hooks)
            offsets = [rest[-1] for rest in here.rest]
            await here.client.disconnect()
            closed = await rec.wait("eio.close")
            # gone for longer than the deadline by the sniffer's clock: not a reconnect
            await until_past(sniffer, rec, closed.ts + 0.3)
            there = await Dashboard().connect(b)
            async with http.post(f"{sniffer.url}/api/events", json={"session_id": "lost"}) as r:
                assert r.status == 200
            flag = await rec.wait_flag(F.LOST)
            if adapter == "streams":
                await until(lambda: there.got)  # delivered, on the other node
            await there.client.disconnect()
    assert rec.flags(F.LOST) == [flag]
    if adapter == "streams":
        assert flag.get("code") == F.LOST_OTHER_NODE
        assert "a cluster adapter's Redis stream offset" in flag.get("cause")
        assert "--cluster redis://HOST:PORT" in flag.get("hint")
    else:
        assert flag.get("code") == F.LOST_NO_RECEIVERS, flag.get("cause")
    # What each adapter appended: stream ids on the streams adapter, random ids in memory.
    assert len(offsets) == hooks and all(isinstance(o, str) for o in offsets)
    assert all(re.fullmatch(r"[0-9]{13}-[0-9]+", o) for o in offsets) == (adapter == "streams")
