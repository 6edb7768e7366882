"""The Node cluster tests on ``@socket.io/redis-streams-adapter`` (XADD of the cluster adapter's
messages to the stream ``socket.io``, XREAD by every node), which no SUBSCRIBE hears: the
sniffers XREAD the stream read-only, from the moment they joined. Healthy, nothing is lost and
the emits are seen; every third event node A skips is flagged by node A's sniffer, naming node
A; malformed entries are counted and the link reads on, through a Redis restart too."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest
import redis.asyncio as aioredis

from sio_sniffer.cluster import ClusterConfig, ClusterError
from sio_sniffer.cluster.link import parse_stream_entry
from tests.cluster.cluster_peers import (
    DEADLINE,
    EVENTS,
    ROOM,
    RedisServer,
    Run,
    check_drops,
    check_healthy,
    check_nothing_lost,
    drive,
    nodes,
    redis_server,
    until,
)
from tests.rigs import generic, judging, node_server

SERVER = Path(__file__).with_name("cluster_server.js")
STREAM = "socket.io"
CHANNEL = f"stream:{STREAM}"  # how the link names the stream in its decode errors
REPEAT = 5

_BROADCAST = {"packet": {"type": 2, "data": ["probe", {"n": 1}], "nsp": "/"},
              "opts": {"rooms": ["r"], "except": [], "flags": {}}}


def _entry(uid: str, data: object = _BROADCAST) -> dict[str, str]:
    """An entry as the streams adapter XADDs a broadcast without binary."""
    return {"uid": uid, "nsp": "/", "type": "3", "data": json.dumps(data)}


@contextlib.asynccontextmanager
async def streams_pair(redis: RedisServer, drop_a: int) -> AsyncIterator[tuple[str, str]]:
    async with node_server(SERVER, redis.url, str(drop_a), "streams") as a, \
            node_server(SERVER, redis.url, "0", "streams") as b:
        yield a, b


GARBAGE = [
    ({"uid": "u", "nsp": "/", "type": "3", "data": "@@ not base64 @@"},
     "a streams adapter entry's data neither JSON nor base64"),
    ({"hello": "world"}, "a streams adapter entry of the wrong shape (not uid, nsp, type, data)"),
    ({"uid": "u", "nsp": "/", "type": "99"}, "an unknown streams adapter message type"),
    ({"uid": "u", "nsp": "/", "type": "3", "data": '{"packet": '},
     "not JSON (truncated or garbled)"),
]


async def _garbage(redis: RedisServer) -> None:
    """Malformed entries XADDed to the adapter's stream, each REPEAT times."""
    client = aioredis.Redis.from_url(redis.url)
    try:
        for _ in range(REPEAT):
            for fields, _reason in GARBAGE:
                await client.xadd(STREAM, fields)  # type: ignore[arg-type]
    finally:
        await client.aclose()


async def _run(where: str, drop_a: int = 0, garbage: bool = False) -> Run:
    async with redis_server() as redis, streams_pair(redis, drop_a) as upstreams:
        # Listeners: the adapters' SUBSCRIBE (their ephemeral messages and responses) and the
        # two sniffers; XREAD readers: the two nodes.
        return await drive(redis, upstreams, where, EVENTS // drop_a if drop_a else 0, 4,
                           xreaders=2,
                           before_events=(lambda: _garbage(redis)) if garbage else None)


async def test_a_healthy_streams_cluster_loses_nothing_and_its_emits_are_seen() -> None:
    run = await _run("B")
    check_healthy(run, "B")
    assert run.rec_a.of("decode_error") == [] and run.rec_b.of("decode_error") == []


async def test_a_healthy_streams_cluster_with_a_dashboard_on_each_node_loses_nothing() -> None:
    """Which delivery closes an event is left open (the adapter delivers on its own node and
    XADDs, node B's delivery told through Redis may reach node A's sniffer first)."""
    run = await _run("AB")
    check_nothing_lost(run)
    assert run.rec_a.of("decode_error") == [] and run.rec_b.of("decode_error") == []


async def test_every_third_event_dropped_by_node_a_of_a_streams_cluster_is_flagged() -> None:
    check_drops(await _run("B", drop_a=3), "B")


async def test_malformed_stream_entries_are_counted_and_the_link_reads_on() -> None:
    """Garbage XADDed before the traffic: one decode error a kind (and its total at stop) on
    each sniffer, and the cluster is judged as when healthy."""
    run = await _run("B", garbage=True)
    check_healthy(run, "B")
    for rec in (run.rec_a, run.rec_b):
        records = rec.of("decode_error")
        first = [r for r in records if not r.get("final")]
        final = {(r.get("channel"), r.get("reason")): r.get("count") for r in records
                 if r.get("final")}
        assert sorted((r.get("channel"), r.get("reason")) for r in first) == \
            sorted((CHANNEL, reason) for _, reason in GARBAGE)
        assert all(r.get("layer") == "cluster" and r.get("count") == 1 for r in first)
        assert final == {(CHANNEL, reason): REPEAT for _, reason in GARBAGE}


def test_a_streams_entry_with_binary_is_base64_msgpack() -> None:
    data = {"packet": {"type": 5, "data": ["blob", b"\x00\x01"], "nsp": "/chat"},
            "opts": {"rooms": [ROOM], "except": [], "flags": {}}}
    fields = {"uid": b"u1", "nsp": b"/chat", "type": b"3",
              "data": base64.b64encode(msgpack.packb(data))}
    emit = parse_stream_entry(fields)
    assert emit is not None
    assert (emit["adapter"], emit["host"], emit["nsp"], emit["name"], emit["room"]) == \
        ("node-streams", "u1", "/chat", "blob", ROOM)
    assert emit["args"] == [b"\x00\x01"]
    # Its other messages are understood and are not emits.
    assert parse_stream_entry({"uid": b"u1", "nsp": b"/", "type": b"4",
                               "data": b'{"requestId": "x"}'}) is None


async def test_the_stream_is_read_again_after_a_redis_restart() -> None:
    """The default stream, absent when the link joins, is read from its first entry once it
    appears; Redis restarted (the stream gone with it), the link comes back and reads the new
    one the same way."""
    async with redis_server() as redis, nodes(redis.url, 0) as (a,), \
            judging(a.server.url, generic(DEADLINE),
                    cluster=ClusterConfig(redis.url, "A")) as (sa, rec_a):
        link = sa.observer.cluster
        assert link is not None
        view = sa.analyzer.relay.cluster
        for round_ in ("before", "after"):
            await rec_a.wait("cluster.state", state="on")
            await until(lambda: STREAM in link.streams_absent)
            client = aioredis.Redis.from_url(redis.url)
            try:
                await client.xadd(STREAM, _entry(f"node-{round_}"))  # type: ignore[arg-type]
            finally:
                await client.aclose()
            await until(lambda r=round_: any(f.node == f"node-{r}" for f in view.emits))
            if round_ == "before":
                redis.stop()
                await rec_a.wait("cluster.state", state="off")
                await redis.start()
                await rec_a.wait_count("cluster.state", 3)
        assert link.errors == {}
    assert [r.get("state") for r in rec_a.of("cluster.state")] == ["on", "off", "on"]


async def test_a_stream_name_of_another_type_is_not_read_and_the_named_stream_is() -> None:
    """``stream:NAME`` names the streams read (here two); a missing one that appears as a key
    of another type is left alone (no error, the link stays on), and the other is read on."""
    async with redis_server() as redis, nodes(redis.url, 0) as (a,), \
            judging(a.server.url, generic(DEADLINE), cluster=ClusterConfig(
                redis.url, "A", adapter_channels=("socketio", "stream:app-a",
                                                  "stream:app-b"))) as (sa, rec_a):
        link = sa.observer.cluster
        assert link is not None and link.config.streams == ("app-a", "app-b")
        await rec_a.wait("cluster.state", state="on")
        await until(lambda: {"app-a", "app-b"} <= link.streams_absent)
        view = sa.analyzer.relay.cluster
        client = aioredis.Redis.from_url(redis.url)
        try:
            await client.set("app-b", "not a stream")
            await client.xadd("app-a", _entry("node-a"))  # type: ignore[arg-type]
            await until(lambda: any(f.node == "node-a" for f in view.emits))
            await until(lambda: "app-b" not in link.stream_offsets)
            await client.xadd("app-a", _entry("node-a2"))  # type: ignore[arg-type]
            await until(lambda: any(f.node == "node-a2" for f in view.emits))
        finally:
            await client.aclose()
        assert link.on and link.errors == {}
        assert [f.node for f in view.emits].count("node-a") == 1
    assert [r.get("state") for r in rec_a.of("cluster.state")] == ["on"]


def test_streams_are_named_among_the_channels_or_default() -> None:
    plain = ClusterConfig("redis://127.0.0.1:6379/0", "A")
    assert plain.streams == (STREAM,) and plain.pubsub_channels == plain.adapter_channels
    named = ClusterConfig("redis://127.0.0.1:6379/0", "A",
                          adapter_channels=("socket.io#*", "stream:app"))
    assert named.streams == ("app",) and named.pubsub_channels == ("socket.io#*",)
    with pytest.raises(ClusterError, match=r"stream:socket\.io"):
        ClusterConfig("redis://127.0.0.1:6379/0", "A", adapter_channels=("stream:",))
