"""Without --cluster: a sniffer in front of node A of a real two-node cluster (python-socketio
on a real redis-server), the dashboards on node B. Behind a load balancer (its sticky-session
cookie on the answers) a lost hook event says the receivers may be on another node and names
--cluster; with no sign of a cluster it stays "no client was connected"."""

from __future__ import annotations

import aiohttp
import pytest

from sio_sniffer.model import flags as F
from tests.cluster.cluster_peers import Dashboard, nodes, redis_server, until
from tests.rigs import generic, judging


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
        assert flag.get("code") == F.LOST_NO_RECEIVERS
        assert "no client was connected" in flag.get("cause")
