"""The cluster tests again with Node ``socket.io`` nodes on ``@socket.io/redis-adapter`` (its
msgpack on ``socket.io#/#...``): healthy, nothing is lost wherever the dashboards are; every
third event skipped by node A is flagged by node A's sniffer with its cause."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.cluster_peers import (
    EVENTS,
    RedisServer,
    Run,
    check_drops,
    check_healthy,
    drive,
    redis_server,
)
from tests.rigs import node_server

SERVER = Path(__file__).with_name("cluster_server.js")


@contextlib.asynccontextmanager
async def node_pair(redis: RedisServer, drop_a: int) -> AsyncIterator[tuple[str, str]]:
    async with node_server(SERVER, redis.url, str(drop_a)) as a, \
            node_server(SERVER, redis.url, "0") as b:
        yield a, b


async def _run(where: str, drop_a: int = 0) -> Run:
    async with redis_server() as redis, node_pair(redis, drop_a) as upstreams:
        # Each Node adapter listens from the start (one subscribing client each), and the two
        # sniffers.
        return await drive(redis, upstreams, where, EVENTS // drop_a if drop_a else 0, 4)


@pytest.mark.parametrize("where", ["B", "AB", "A"])
async def test_a_healthy_node_cluster_loses_nothing_wherever_the_dashboards_are(
        where: str) -> None:
    check_healthy(await _run(where), where)


@pytest.mark.parametrize("where", ["B", "AB"])
async def test_every_third_event_dropped_by_node_a_is_flagged_by_its_sniffer(where: str) -> None:
    check_drops(await _run(where, drop_a=3), where)
