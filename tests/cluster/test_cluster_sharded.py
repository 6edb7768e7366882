"""The Node cluster tests on ``@socket.io/redis-adapter``'s sharded adapter
(``createShardedAdapter``: SPUBLISH on shard channels, Redis >= 7), which SUBSCRIBE and
PSUBSCRIBE never hear: the sniffers find the shard channels under the adapter pattern (PUBSUB
SHARDCHANNELS) and SSUBSCRIBE to them. Healthy, nothing is lost and the emits are seen; every
third event node A skips is flagged by node A's sniffer, naming node A."""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.cluster.cluster_peers import (
    EVENTS,
    ROOM,
    RedisServer,
    Run,
    check_drops,
    check_healthy,
    check_nothing_lost,
    drive,
    redis_server,
)
from tests.rigs import node_server

SERVER = Path(__file__).with_name("cluster_server.js")


def _redis_major() -> int:
    found = re.search(r"v=(\d+)\.", subprocess.run(["redis-server", "--version"],
                                                   capture_output=True, text=True).stdout)
    return int(found.group(1)) if found else 0


pytestmark = pytest.mark.skipif(_redis_major() < 7, reason="shard channels need Redis >= 7")


@contextlib.asynccontextmanager
async def sharded_pair(redis: RedisServer, drop_a: int) -> AsyncIterator[tuple[str, str]]:
    async with node_server(SERVER, redis.url, str(drop_a), "sharded") as a, \
            node_server(SERVER, redis.url, "0", "sharded") as b:
        yield a, b


async def _run(where: str, drop_a: int = 0) -> Run:
    async with redis_server() as redis, sharded_pair(redis, drop_a) as upstreams:
        # The adapters only SSUBSCRIBE: the listeners counted are the two sniffers, which must
        # read the namespace's channel and the room's (dynamic mode: one channel per room).
        return await drive(redis, upstreams, where, EVENTS // drop_a if drop_a else 0, 2,
                           shards=("socket.io#/#", f"socket.io#/#{ROOM}#"))


async def test_a_healthy_sharded_cluster_loses_nothing_and_its_emits_are_seen() -> None:
    run = await _run("B")
    check_healthy(run, "B")
    assert run.rec_a.of("decode_error") == [] and run.rec_b.of("decode_error") == []


async def test_a_healthy_sharded_cluster_with_a_dashboard_on_each_node_loses_nothing() -> None:
    """As check_healthy, but which delivery closes an event is left open: the sharded adapter
    delivers on its own node only once Redis has acknowledged the SPUBLISH, so node B's
    delivery, told through Redis, may reach node A's sniffer first."""
    run = await _run("AB")
    check_nothing_lost(run)
    assert run.rec_a.of("decode_error") == [] and run.rec_b.of("decode_error") == []


async def test_every_third_event_dropped_by_node_a_of_a_sharded_cluster_is_flagged() -> None:
    check_drops(await _run("B", drop_a=3), "B")
