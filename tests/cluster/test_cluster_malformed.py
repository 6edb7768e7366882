"""Malformed messages on every channel a --cluster sniffer reads, published as real bytes into a
real redis-server under a running two-node cluster (python-socketio on AsyncRedisManager):
garbage, truncated JSON and msgpack, the wrong shapes, unknown methods, packet types and kinds,
a pickle, oversized messages, each many times over. Each kind is one decode error (one record
and one flag, and one closing total when the sniffer stops), nothing raises, and the valid
messages published after the garbage are still understood and the traffic keeps being judged
through the other node."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
from typing import Any

import aiohttp
import msgpack
import pytest
import redis.asyncio as aioredis

from sio_sniffer.cluster import ClusterConfig
from sio_sniffer.cluster.link import MAX_MESSAGE
from sio_sniffer.model import flags as F
from tests.cluster.cluster_peers import DEADLINE, Dashboard, at_least, nodes, redis_server, until
from tests.rigs import generic, judging

PY = "socketio"  # python-socketio's AsyncRedisManager
NODE = "socket.io#/#"  # @socket.io/redis-adapter, namespace "/"
OWN = "sio-sniffer#socketio"  # the sniffers' own
REPEAT = 40  # each small garbage message, so many times: a flood is still one record a kind

_EMIT = msgpack.packb(["uid-1", {"type": 2, "data": ["x", {"k": 1}], "nsp": "/"},
                       {"rooms": [], "except": [], "flags": {}}])
# (channel, bytes, the reason the decode error must give, how many times it is published)
GARBAGE: list[tuple[str, bytes, str, int]] = [
    (PY, b"\x00\x01\xffgarbage bytes", "not msgpack", REPEAT),
    (PY, b'{"method": "emit", "event": "x", "data": ', "not JSON", REPEAT),
    (PY, b'{"hello": "world"}', "JSON of the wrong shape", REPEAT),
    (PY, b'[1, 2, 3]', "JSON of the wrong shape", REPEAT),
    (PY, b'{"method": "teleport", "host_id": "h"}', "an unknown python-socketio method", REPEAT),
    (PY, b'{"method": "emit", "event": 7, "namespace": "/", "data": [], "room": "nobody"}',
     "a python-socketio emit of the wrong shape", REPEAT),
    (PY, pickle.dumps({"method": "emit", "event": "x"}), "a pickle", REPEAT),
    (PY, b"{" + b" " * MAX_MESSAGE + b"}", "larger than 1024 KiB", 3),
    (NODE, _EMIT[:-4], "truncated msgpack", REPEAT),
    (NODE, b"\xc1\xc1\xc1", "not msgpack", REPEAT),
    (NODE, msgpack.packb({"type": 2}), "msgpack of the wrong shape", REPEAT),
    (NODE, msgpack.packb(["uid-1", {"type": 42, "data": []}, {}]),
     "an unknown Socket.IO packet type", REPEAT),
    (NODE, msgpack.packb(["uid-1", {"type": 2, "data": "no list"}, {}]),
     "a Node adapter event of the wrong shape", REPEAT),
    (NODE, b"\x93" + b"\x00" * (MAX_MESSAGE + 1), "larger than 1024 KiB", 3),
    (OWN, b"\xff\xfe\x00", "not JSON", REPEAT),
    (OWN, b'{"node": "C", "kind": "p"', "not JSON", REPEAT),
    (OWN, b'["node", "C"]', "JSON of the wrong shape", REPEAT),
    (OWN, b'{"node": "C", "kind": "zz"}', "an unknown sniffer message kind", REPEAT),
    (OWN, b'{"node": "C", "kind": "d", "d": "abc"}', "a delivery of the wrong shape", REPEAT),
    (OWN, b'{"node": "C", "kind": "p", "clients": 3}', "a presence of the wrong shape", REPEAT),
    (OWN, b'{"x": "' + b"y" * MAX_MESSAGE + b'"}', "larger than 1024 KiB", 3),
]


def _expected() -> dict[tuple[str, str], int]:
    """(channel, reason start) -> how many messages of that kind were published."""
    out: dict[tuple[str, str], int] = {}
    for channel, _, reason, times in GARBAGE:
        out[(channel, reason)] = out.get((channel, reason), 0) + times
    return out


def _kind(record: Any) -> tuple[str, str]:
    reason = str(record.get("reason"))
    match = [r for c, _, r, _ in GARBAGE if c == record.get("channel") and reason.startswith(r)]
    assert match, reason
    return str(record.get("channel")), max(match, key=len)


async def test_malformed_messages_on_every_channel_are_counted_once_and_the_link_reads_on(
        ) -> None:
    said: list[str] = []
    async with redis_server() as redis, nodes(redis.url, 0, 0) as (a, b), \
            judging(a.server.url, generic(DEADLINE), cluster=ClusterConfig(redis.url, "A"),
                    report=said.append) as (sa, rec_a), \
            judging(b.server.url, generic(DEADLINE),
                    cluster=ClusterConfig(redis.url, "B")) as (sb, _):
        await rec_a.wait("cluster.state", state="on")
        view = sa.analyzer.relay.cluster
        await until(lambda: "B" in view.nodes)
        dashboard = await Dashboard().connect(sb.url)
        chatter = await Dashboard().connect(sa.url, join=False)  # node A's manager listens
        await until(lambda: at_least(redis.listeners(), 4))
        publisher = aioredis.Redis.from_url(redis.url)
        try:
            for _ in range(REPEAT):
                for channel, data, _, times in GARBAGE:
                    if times == REPEAT:
                        await publisher.publish(channel, data)
            for channel, data, _, times in GARBAGE:
                if times != REPEAT:
                    for _ in range(times):
                        await publisher.publish(channel, data)
            # Valid messages after the garbage, one on each channel: all understood.
            await publisher.publish(PY, b'{"method": "emit", "event": "probe", "data": '
                                    b'{"marker": "after-garbage"}, "namespace": "/", "room": '
                                    b'"nobody", "skip_sid": null, "callback": null, '
                                    b'"host_id": "test-host"}')
            await publisher.publish(NODE, msgpack.packb(
                ["node-uid", {"type": 2, "data": ["probe-node", {"k": "v"}], "nsp": "/"},
                 {"rooms": ["r1"], "except": [], "flags": {}}]))
            await publisher.publish(OWN, b'{"kind": "p", "node": "C", "clients": {"/": 3}}')
        finally:
            await publisher.aclose()
        await until(lambda: view.nodes.get("C") == {"/": 3})
        await until(lambda: {f.node for f in view.emits} >= {"test-host", "node-uid"})
        probe = next(f for f in view.emits if f.node == "node-uid")
        assert (probe.name, probe.nsp, probe.room) == ("probe-node", "/", "r1")
        # And the traffic keeps flowing and being judged as one cluster.
        async with aiohttp.ClientSession() as http, \
                http.post(f"{sa.url}/api/events", json={"session_id": "after-garbage"}) as r:
            assert r.status == 200
        await until(lambda: any(n == "claude_event" for n, _ in dashboard.got))
        await until(lambda: view.delivered_elsewhere.get("B") == 1)
        link = sa.observer.cluster
        assert link is not None and link.on
        errors = dict(link.errors)
        for client in (dashboard, chatter):
            await client.client.disconnect()
    expected = _expected()
    records = rec_a.of("decode_error")
    first = [r for r in records if not r.get("final")]
    final = [r for r in records if r.get("final")]
    # One record a kind as it first happened, with the first bytes; one total a kind at stop.
    assert sorted(_kind(r) for r in first) == sorted(expected)
    assert all(r.get("layer") == "cluster" and r.get("count") == 1 and r.get("raw")
               for r in first)
    assert {_kind(r): r.get("count") for r in final} == expected
    assert sum(errors.values()) == sum(expected.values())
    flags = rec_a.flags(F.DECODE_ERROR)
    assert sorted(_kind(f) for f in flags) == sorted(expected)
    assert all("was not understood and was skipped" in f.get("cause") for f in flags)
    assert rec_a.flags(F.LOST) == []
    told = [m for m in said if "not understood" in m]
    assert len(told) == 1 and f"{sum(expected.values())} message(s)" in told[0]


def _redis_major() -> int:
    found = re.search(r"v=(\d+)\.", subprocess.run(["redis-server", "--version"],
                                                   capture_output=True, text=True).stdout)
    return int(found.group(1)) if found else 0


SHARD = "socket.io#/#"  # the sharded adapter's namespace channel (SPUBLISH)


@pytest.mark.skipif(_redis_major() < 7, reason="shard channels need Redis >= 7")
async def test_malformed_messages_on_a_shard_channel_are_counted_and_the_link_reads_on() -> None:
    """A shard channel someone reads (here a bare SSUBSCRIBE) is found and read by the link:
    garbage SPUBLISHed on it is one decode error a kind, and a valid sharded broadcast after
    it is an emit."""
    async with redis_server() as redis, nodes(redis.url, 0) as (a,), \
            judging(a.server.url, generic(DEADLINE),
                    cluster=ClusterConfig(redis.url, "A")) as (sa, rec_a):
        await rec_a.wait("cluster.state", state="on")
        listener = aioredis.Redis.from_url(redis.url)
        shard = listener.pubsub()
        await shard.ssubscribe(SHARD)
        link = sa.observer.cluster
        assert link is not None
        await until(lambda: SHARD in link.shard_channels)
        publisher = aioredis.Redis.from_url(redis.url)
        try:
            for _ in range(REPEAT):
                for data in (b"\xc1\xc1", b'{"uid": "u", "type": 99}', b'{"uid": "u"',
                             b'{"uid": "u", "type": 3, "data": {"opts": {}}}'):
                    await publisher.execute_command("SPUBLISH", SHARD, data)
            await publisher.execute_command("SPUBLISH", SHARD, json.dumps(
                {"uid": "node-x", "nsp": "/", "type": 3, "data": {
                    "packet": {"type": 2, "data": ["sharded-probe", {"n": 1}], "nsp": "/"},
                    "opts": {"rooms": ["r"], "except": [], "flags": {}}}}))
        finally:
            await publisher.aclose()
        view = sa.analyzer.relay.cluster
        await until(lambda: any(f.node == "node-x" for f in view.emits))
        probe = next(f for f in view.emits if f.node == "node-x")
        assert (probe.name, probe.room) == ("sharded-probe", "r")
        errors = dict(link.errors)
        await shard.aclose()
        await listener.aclose()
    assert errors == {(SHARD, "not msgpack"): REPEAT,
                      (SHARD, "an unknown sharded adapter message type"): REPEAT,
                      (SHARD, "not JSON (truncated or garbled)"): REPEAT,
                      (SHARD, "a sharded adapter broadcast of the wrong shape (no packet)"):
                      REPEAT}
    assert len([r for r in rec_a.of("decode_error") if not r.get("final")]) == 4
