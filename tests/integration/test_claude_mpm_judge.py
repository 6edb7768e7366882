"""The judge on the REAL claude-mpm monitor: each failure mode a claude-mpm user meets, named
right, and the healthy path left alone. Hooks are the real `claude-hook` and the real bash
fast-hook (`claude-hook-fast.sh`, curl with --max-time 0.3) where the hook matters; a stalled
monitor is the real process frozen with SIGSTOP.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from sio_sniffer import model
from sio_sniffer.analysis import AnalysisConfig, load_profile
from sio_sniffer.model import flags as F
from sio_sniffer.model.probes import PROBE_SOURCE
from sio_sniffer.pipeline.sniffer import Sniffer
from sio_sniffer.testing import Recorder, free_port
from tests.integration.mpm_peers import (
    HOOK,
    VENV,
    Monitor,
    dashboard,
    receive,
    run_claude_hook,
    twin_monitors,
)
from tests.paths import NODE_DIR
from tests.rigs import NODE_ENV, judging, until_past

DEADLINE = 1.0
FAST_HOOK = next(VENV.glob("lib/python3*/site-packages/claude_mpm/scripts/claude-hook-fast.sh"),
                 None)


@contextlib.asynccontextmanager
async def sniffing(upstream: str, **settings: Any) -> AsyncIterator[tuple[Sniffer, Recorder]]:
    """The sniffer as a claude-mpm user runs it (the profile), with short deadlines."""
    config = AnalysisConfig(profile=load_profile("claude-mpm"), deadline=DEADLINE,
                            connect_deadline=1.0, **settings)
    async with judging(upstream, config) as rig:
        yield rig


def hook_body(n: int) -> dict[str, Any]:
    """What claude-hook POSTs for a PreToolUse (the shape of claude-mpm 6.5)."""
    return {"namespace": "", "event": "claude_event",
            "data": {"type": "hook", "subtype": "pre_tool", "session_id": f"sess-{n}",
                     "correlation_id": f"corr-{n}", "cwd": "/tmp/project", "source": "test",
                     "timestamp": "2026-12-03T08:00:00Z",
                     "data": {"tool_name": "Bash", "tool_input": {"command": f"make {n}"}}}}


def flags(rec: Recorder) -> list[tuple[Any, Any]]:
    return [(r.get("flag"), r.get("code")) for r in rec.of(model.FLAG)]


async def test_dashboard_opened_after_the_hook_is_not_a_reconnect(monitor: Monitor) -> None:
    """First dashboard ever, opened after the hook: nobody was connected yet, not a reconnect."""
    async with sniffing(f"http://127.0.0.1:{monitor.port}") as (sniffer, rec):
        async with aiohttp.ClientSession() as http, \
                http.post(f"{sniffer.url}/api/events", json=hook_body(1)) as response:
            assert response.status == 204
        await rec.wait(model.HTTP, path="/api/events")
        async with dashboard(sniffer.url):
            flag = await rec.wait_flag(F.LOST)
    assert flag.get("code") == F.LOST_NO_RECEIVERS, flag.get("cause")
    cause = str(flag.get("cause"))
    assert "s later" in cause and "first connection, not a reconnect" in cause
    assert F.LOST_RECONNECTING not in [code for _, code in flags(rec)]


async def test_monitor_down_says_start_it(mpm_home: Path) -> None:
    """The real claude-hook posts to a sniffer whose monitor is not running: the sniffer answers
    502 itself, and says the monitor is down (not a bad body)."""
    down = f"http://127.0.0.1:{free_port()}"
    async with sniffing(down) as (sniffer, rec):
        answer = await run_claude_hook(sniffer.bound[0][1], mpm_home)
        assert answer["continue"] is True  # the hook never blocks Claude Code
        rejected = await rec.wait_flag(F.INGEST_REJECTED)
        lost = await rec.wait_flag(F.LOST)
    assert rejected.get("code") == F.LOST_UPSTREAM_DOWN
    assert "not running" in str(rejected.get("cause"))
    assert "start the server" in str(rejected.get("hint"))
    assert "JSON" not in str(rejected.get("hint"))
    seen = [(r.event, r.conn, r.get("status"), r.get("code")) for r in rec.records
            if r.event in (model.HTTP, model.HTTP_REQUEST, model.UPSTREAM_ERROR, model.FLAG)]
    assert lost.get("code") == F.LOST_UPSTREAM_DOWN, seen
    assert "the server was not running" in str(lost.get("cause"))


async def test_a_late_delivery_is_late_not_lost(monitor: Monitor) -> None:
    """The monitor stalls 1.6 s under a POST (deadline 1 s): lost at the deadline, then the
    event arrives: a `late` flag says how late, and the summary counts it late, not lost."""
    async with sniffing(f"http://127.0.0.1:{monitor.port}") as (sniffer, rec), \
            dashboard(sniffer.url) as got, aiohttp.ClientSession() as http:
        with monitor.stalled():
            post = asyncio.ensure_future(http.post(f"{sniffer.url}/api/events",
                                                   json=hook_body(2)))
            request = await rec.wait(model.HTTP_REQUEST, path="/api/events")
            await rec.wait_flag(F.LOST)
        async with await post as response:
            assert response.status == 204
        tool = await receive(got, "tool_event")
        assert tool["correlation_id"] == "corr-2"
        late = await rec.wait_flag(F.LATE)
    assert late.get("code") == "arrived_late" and late.get("lost_code") == F.LOST_INGEST_ERROR
    assert late.get("after_s") > DEADLINE
    assert "a late delivery, not a loss" in str(late.get("cause"))
    [summary] = rec.of(model.SUMMARY)
    expectations = summary.get("expectations")
    assert expectations["late"] == 1 and expectations["lost"] == 0
    assert expectations["lost_by_cause"] == {} and expectations["open_at_exit"] == 0
    assert request.ts < late.ts


async def test_fast_hook_that_gives_up_during_a_stall(monitor: Monitor, tmp_path: Path) -> None:
    """The real bash fast-hook (curl --max-time 0.3) posts while the monitor is frozen: the hook
    hangs up before the answer, and that is flagged at once, whatever the monitor does next."""
    assert FAST_HOOK is not None, "claude-mpm's claude-hook-fast.sh is missing from the venv"
    async with sniffing(f"http://127.0.0.1:{monitor.port}") as (sniffer, rec), \
            dashboard(sniffer.url):
        env = dict(os.environ, CLAUDE_MPM_SOCKETIO_PORT=str(sniffer.bound[0][1]))
        with monitor.stalled():
            proc = await asyncio.create_subprocess_exec(
                "bash", str(FAST_HOOK), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, env=env, cwd=tmp_path)
            out, _ = await asyncio.wait_for(proc.communicate(json.dumps(HOOK).encode()), 10)
            assert json.loads(out)  # the hook answered Claude Code at once
            flag = await rec.wait_flag(F.LOST)
    assert flag.get("code") == F.LOST_HOOK_GAVE_UP
    assert "hung up" in str(flag.get("cause"))
    assert 0.25 <= flag.get("waited_s") < DEADLINE


async def test_dashboard_connected_and_no_hook_posts_here(monitor: Monitor) -> None:
    """Failure mode 10: hooks not installed or pointed at another port. The dashboard is
    connected and nothing posts: said once, naming the fix."""
    async with sniffing(f"http://127.0.0.1:{monitor.port}", hook_silence=1.0) as (sniffer, rec), \
            dashboard(sniffer.url):
        flag = await rec.wait_flag(F.NO_HOOKS)
    assert flag.get("code") == "no_posts"
    assert "no hook has posted to /api/events" in str(flag.get("cause"))
    assert "CLAUDE_MPM_SERVER_PORT" in str(flag.get("hint"))
    assert len(rec.flags(F.NO_HOOKS)) == 1


async def test_hooks_that_post_here_are_not_missed(monitor: Monitor, mpm_home: Path) -> None:
    """The healthy twin: the real claude-hook posts through the sniffer before the silence is
    up: no no_hooks and no bypassed flag."""
    async with sniffing(f"http://127.0.0.1:{monitor.port}", hook_silence=3.0) as (sniffer, rec), \
            dashboard(sniffer.url) as got:
        await run_claude_hook(sniffer.bound[0][1], mpm_home)
        await receive(got, "tool_event")
        connected = rec.of(model.SIO_CONNECT_OK)[0]
        await until_past(sniffer, rec, connected.ts + 3.2)  # the hooks timer has fired
    assert flags(rec) == []


async def test_hooks_posting_straight_to_the_monitor(monitor: Monitor, mpm_home: Path) -> None:
    """The real claude-hook posts to the monitor's own port, past the sniffer, while the
    dashboard watches through the sniffer: events reach it that never came in here."""
    async with sniffing(f"http://127.0.0.1:{monitor.port}") as (sniffer, rec), \
            dashboard(sniffer.url) as got:
        opened = await rec.wait(model.SIO_CONNECT_OK)
        await until_past(sniffer, rec, opened.ts + 1.1)  # past any history sent on connect
        for n in (1, 2):
            await run_claude_hook(monitor.port, mpm_home, dict(HOOK, session_id=f"direct-{n}"))
            tool = await receive(got, "tool_event")
            assert tool["session_id"] == f"direct-{n}"
        flag = await rec.wait_flag(F.BYPASSED)
    assert flag.get("code") == "hooks_elsewhere"
    cause = str(flag.get("cause"))
    assert "never came in through this sniffer" in cause and f"'{flag.name}'" in cause
    assert flag.name in ("tool_event", "claude_event")  # what the monitor relays a hook as
    assert rec.of(model.HTTP_REQUEST, path="/api/events") == []
    assert F.LOST not in [kind for kind, _ in flags(rec)]


async def test_the_same_hook_posted_twice_is_two_deliveries(monitor: Monitor) -> None:
    """A retried hook POSTs the same body twice; the monitor relays each: two ingests, two
    deliveries, nothing wrong (no duplicate blaming the server, nothing lost)."""
    async with sniffing(f"http://127.0.0.1:{monitor.port}") as (sniffer, rec), \
            dashboard(sniffer.url) as got, aiohttp.ClientSession() as http:
        for _ in range(2):
            async with http.post(f"{sniffer.url}/api/events", json=hook_body(7)) as response:
                assert response.status == 204
        for _ in range(2):
            assert (await receive(got, "tool_event"))["correlation_id"] == "corr-7"
        await until_past(sniffer, rec, rec.of(model.HTTP_REQUEST, path="/api/events")[-1].ts
                         + DEADLINE)
    assert flags(rec) == []
    [summary] = rec.of(model.SUMMARY)
    assert summary.get("expectations")["matched"] == 2


async def test_diagnose_probes_are_counted_not_flagged(monitor: Monitor) -> None:
    """A diagnose probe (marked with its source) that nobody receives is counted as a probe,
    not flagged lost; the same event from a real hook is."""
    async with sniffing(f"http://127.0.0.1:{monitor.port}") as (sniffer, rec), \
            aiohttp.ClientSession() as http:
        probe = hook_body(8)
        probe["data"]["source"] = PROBE_SOURCE
        for body in (probe, hook_body(9)):
            async with http.post(f"{sniffer.url}/api/events", json=body) as response:
                assert response.status == 204
        lost = await rec.wait_flag(F.LOST)
        await until_past(sniffer, rec, rec.of(model.HTTP_REQUEST)[-1].ts + DEADLINE)
    assert lost.get("code") == F.LOST_NO_RECEIVERS
    assert len(rec.flags(F.LOST)) == 1  # the real hook's event only
    [summary] = rec.of(model.SUMMARY)
    assert summary.get("expectations")["probes_lost"] == 1


async def test_a_body_that_is_not_json_is_named(monitor: Monitor) -> None:
    """The monitor rejects a hook body that is not JSON: the flag says so and shows how the body
    starts, instead of guessing among bad JSON, a missing field and size."""
    async with sniffing(f"http://127.0.0.1:{monitor.port}") as (sniffer, rec), \
            aiohttp.ClientSession() as http, http.post(
                f"{sniffer.url}/api/events", data=b"{'event': 'claude_event', oops",
                headers={"Content-Type": "application/json"}) as response:
        assert response.status >= 400
        flag = await rec.wait_flag(F.INGEST_REJECTED)
    cause = str(flag.get("cause"))
    assert "the body is not JSON" in cause and "{'event': 'claude_event', oops" in cause
    assert "must be one JSON document" in str(flag.get("hint"))


async def test_a_body_above_the_limit_is_named(monitor: Monitor) -> None:
    """A hook body above aiohttp's 1 MiB limit: the rejection names the size and the limit."""
    big = hook_body(11)
    big["data"]["data"]["tool_input"]["content"] = "x" * (1024 * 1024 + 100)
    async with sniffing(f"http://127.0.0.1:{monitor.port}") as (sniffer, rec), \
            aiohttp.ClientSession() as http, \
            http.post(f"{sniffer.url}/api/events", json=big) as response:
        assert response.status >= 400
        flag = await rec.wait_flag(F.INGEST_REJECTED)
    assert "above the server's 1048576-byte limit" in str(flag.get("cause"))
    assert "client_max_size" in str(flag.get("hint"))



@contextlib.asynccontextmanager
async def node_dashboard(url: str, **options: Any) -> AsyncIterator[asyncio.StreamReader]:
    """claude-mpm's dashboard client library (socket.io-client, defaults: polling, upgrade,
    reconnection, unless ``options`` say otherwise), its JSON lines to read."""
    process = await asyncio.create_subprocess_exec(
        "node", str(NODE_DIR / "dashboard_client.js"), url, json.dumps(options), env=NODE_ENV,
        stdout=asyncio.subprocess.PIPE)
    try:
        assert process.stdout is not None
        yield process.stdout
    finally:
        process.kill()
        await process.wait()


async def disown_one(url: str) -> None:
    """Open sessions and send each a pong on a fresh connection until one is unknown to the
    server that gets the pong (two servers on the port: each try misses with a chance of 1/2)."""
    base = f"{url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        for _ in range(40):
            async with http.get(base) as response:
                sid = json.loads((await response.text())[1:])["sid"]
            async with http.post(f"{base}&sid={sid}", data=b"3") as response:
                if response.status == 400:
                    return
    raise AssertionError("40 sessions, none disowned: not two servers on the port")


async def test_two_monitors_sharing_a_port(mpm_home: Path) -> None:
    """Two real monitors on one port (reuse_port): sessions opened on one are unknown to the
    other, and hook POSTs reach either. The verdict is two servers, and nothing contradicts it:
    every lost event is put down to them, no CONNECT is called unanswered."""
    port = free_port()
    with twin_monitors(port, mpm_home):
        async with sniffing(f"http://127.0.0.1:{port}") as (sniffer, rec):
            await disown_one(sniffer.url)
            # reconnecting every 0.1-0.2 s instead of 1-5 s: it keeps losing its session
            async with node_dashboard(sniffer.url, reconnectionDelay=100,
                                      reconnectionDelayMax=200) as lines:
                while json.loads(await asyncio.wait_for(lines.readline(), 30))["event"] \
                        != "connect":
                    pass
                # each hook on a connection of its own, as claude-hook posts
                async with aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(force_close=True)) as http:
                    for n in range(30):
                        async with http.post(f"{sniffer.url}/api/events",
                                             json=hook_body(n)) as response:
                            assert response.status == 204
                last = rec.of(model.HTTP_REQUEST, path="/api/events")[-1].ts
                await until_past(sniffer, rec, last + DEADLINE + 0.5)
    seen = flags(rec)
    disowned = [code for kind, code in seen if kind == F.UNKNOWN_SID]
    lost = [code for kind, code in seen if kind == F.LOST]
    assert disowned and set(disowned) == {"two_servers"}, seen
    # 30 POSTs to either server: all of them reaching the dashboard's one has a chance of 2^-30
    assert lost and set(lost) == {F.LOST_TWO_SERVERS}, seen
    assert {kind for kind, _ in seen} <= {F.UNKNOWN_SID, F.LOST}, seen
    [summary] = rec.of(model.SUMMARY)
    expectations = summary.get("expectations")
    assert expectations["matched"] + expectations["lost"] == 30
