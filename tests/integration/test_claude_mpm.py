"""The sniffer in front of the REAL claude-mpm monitor server (PyPI claude-mpm on Python 3.13);
the monitor fixtures are in conftest.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import socketio

from sio_sniffer.analysis import AnalysisConfig, load_profile
from sio_sniffer.model import Record, fingerprint
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from tests.integration.mpm_peers import dashboard, receive, run_claude_hook, run_cli


@pytest.fixture
async def sniffer(mpm_port: int) -> AsyncIterator[tuple[Sniffer, list[Record]]]:
    records: list[Record] = []
    config = ProxyConfig(listen=[("127.0.0.1", 0)], upstream=f"http://127.0.0.1:{mpm_port}",
                         analysis=AnalysisConfig(profile=load_profile("claude-mpm"),
                                                 deadline=1.0, connect_deadline=1.0))
    sn = Sniffer(config, sinks=[records.append])
    await sn.start()
    yield sn, records
    await sn.stop()


def _flags(records: list[Record], kind: str | None = None) -> list[Record]:
    return [r for r in records if r.event == "flag" and (kind is None or r.get("flag") == kind)]


async def test_real_claude_hook_reaches_the_dashboard_through_the_sniffer(
        sniffer: tuple[Sniffer, list[Record]], mpm_home: Path) -> None:
    """The real `claude-hook` command, pointed at the sniffer, is logged as an ingest POST and
    its event reaches a dashboard client; the in->out correlation closes, so nothing is lost."""
    sn, records = sniffer
    async with dashboard(sn.url) as got:
        answer = await run_claude_hook(sn.bound[0][1], mpm_home)
        assert answer["continue"] is True
        tool = await receive(got, "tool_event")
        assert tool["subtype"] == "pre_tool" and tool["session_id"] == "sess-42"
    await sn.stop()  # the analysis' finish decides every open expectation
    posts = [r for r in records if r.event == "http.request" and r.get("path") == "/api/events"]
    assert posts and posts[0].args["data"]["session_id"] == "sess-42"
    outs = [r for r in records if r.event == "sio.event" and r.dir == "out"
            and r.name == "tool_event"]
    assert outs and outs[0].args[0]["data"]["tool_name"] == "Bash"
    assert not _flags(records, "lost"), _flags(records)
    assert not _flags(records, "ingest_rejected")


async def test_auth_payload_is_never_answered_and_flagged(
        sniffer: tuple[Sniffer, list[Record]]) -> None:
    """claude-mpm's real bug: a CONNECT with an auth payload is never answered; the sniffer
    flags it as connect_unanswered with the fix."""
    sn, records = sniffer
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(sn.url, auth={"token": "dev-token"}, transports=["websocket"],
                             wait_timeout=2)
    flags: list[Record] = []
    for _ in range(40):
        flags = _flags(records, "connect_unanswered")
        if flags:
            break
        await asyncio.sleep(0.1)
    assert flags and flags[0].nsp == "/"
    assert "auth" in (flags[0].get("cause") + flags[0].get("hint")).lower()
    connects = [r for r in records if r.event == "sio.connect"]
    assert connects and connects[0].get("auth") == {"token": fingerprint("dev-token")}


async def test_hook_namespace_is_refused_by_the_real_server(
        sniffer: tuple[Sniffer, list[Record]]) -> None:
    """The real server registers only "/": a client on /hook gets CONNECT_ERROR, flagged."""
    sn, records = sniffer
    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(sn.url, namespaces=["/hook"], transports=["websocket"],
                             wait_timeout=3)
    errors = [r for r in records if r.event == "sio.connect_error" and r.nsp == "/hook"]
    assert errors and errors[0].get("message")
    async with aiohttp.ClientSession() as http, http.get(sn.url + "/health") as resp:
        health = await resp.json()
    assert health["service"] == "claude-mpm-monitor"



async def test_diagnose_tells_the_truth_about_the_real_monitor(mpm_port: int) -> None:
    """diagnose on the real monitor: "/" works, hook events arrive, and the auth bug (a CONNECT
    with auth is never answered) is a warning, since its own dashboard sends no auth: exit 0.
    Asked for /hook too, the missing namespace is the one problem: exit 1."""
    url = f"http://127.0.0.1:{mpm_port}"
    code, out, _ = await run_cli("diagnose", url, "--events", "5", "--json")
    report = json.loads(out)
    assert code == 0 and report["exit_code"] == 0 and report["healthy"] is True
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["namespace /"]["status"] == "pass"
    assert checks["auth: valid"]["status"] == "warn"
    assert checks["auth: valid"]["code"] == "auth_connect_unanswered"
    assert "auth" in checks["auth: valid"]["fix"]
    assert checks["hook event"]["status"] == "pass"
    assert {f["flag"] for f in report["flags"]} >= {"connect_unanswered"}

    code, out, _ = await run_cli("diagnose", url, "--nsp", "/hook", "--events", "5", "--json")
    report = json.loads(out)
    assert code == 1 and report["exit_code"] == 1
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert [(c["name"], c["code"]) for c in failed] == [("namespace /hook", "namespace_missing")]


async def test_hook_test_events_arrive_at_a_dashboard(
        sniffer: tuple[Sniffer, list[Record]]) -> None:
    """hook-test --mode http through the sniffer: every simulated hook POST reaches a
    dashboard client connected to the real monitor."""
    sn, records = sniffer
    async with dashboard(sn.url) as got:
        code, out, _ = await run_cli("hook-test", sn.url, "--mode", "http", "--events", "3")
        assert code == 0, out
        seqs = set()
        while len(seqs) < 3:  # hook-test cycles subtypes, so the relayed names vary
            _, data = await asyncio.wait_for(got.get(), 10)
            inner = data.get("data") if isinstance(data, dict) else None
            if isinstance(inner, dict) and "probe" in inner:
                seqs.add(inner["seq"])
    await sn.stop()
    posts = [r for r in records if r.event == "http.request" and r.get("path") == "/api/events"]
    assert len(posts) == 3
    assert not _flags(records, "lost")
