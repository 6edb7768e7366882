"""The live page of a sniffer with --cluster, in Chromium: it names this node, the other node
with its clients, and the events the other node delivered for this one (two python-socketio
nodes on a real redis-server; hooks into node A, the dashboard on node B)."""

from __future__ import annotations

import aiohttp
from playwright.async_api import Page, expect

from sio_sniffer.cluster import ClusterConfig
from sio_sniffer.web.live import LiveUI
from tests.cluster.cluster_peers import DEADLINE, Dashboard, at_least, nodes, redis_server, until
from tests.rigs import generic, judging


async def test_the_page_shows_the_cluster(page: Page) -> None:
    ui = LiveUI("127.0.0.1", 0)
    async with redis_server() as redis, nodes(redis.url, 0, 0) as (a, b), \
            judging(a.server.url, generic(DEADLINE), cluster=ClusterConfig(redis.url, "A"),
                    sinks=[ui.sink]) as (sa, rec_a), \
            judging(b.server.url, generic(DEADLINE),
                    cluster=ClusterConfig(redis.url, "B")) as (sb, _):
        ui.use_analysis(sa.analyzer)
        await ui.start()
        try:
            await page.goto(ui.url)
            stat = page.locator("#s-cluster")
            await expect(stat).to_contain_text("node A (on)")
            dashboard = await Dashboard().connect(sb.url)
            await until(lambda: at_least(redis.listeners(), 3))
            async with aiohttp.ClientSession() as http:
                for i in range(3):
                    async with http.post(f"{sa.url}/api/events",
                                         json={"session_id": f"session-{i}"}) as r:
                        assert r.status == 200
            await until(lambda: len(dashboard.got) == 3)
            await expect(stat).to_have_text("node A (on) \u00b7 B: 1 client(s) \u00b7 "
                                            "3 delivered on B")
            await dashboard.client.disconnect()
        finally:
            await ui.stop()
    assert rec_a.flags("lost") == []
