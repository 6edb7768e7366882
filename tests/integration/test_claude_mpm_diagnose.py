"""`sio-sniffer diagnose` as a claude-mpm user meets it, against the REAL monitor (PyPI
claude-mpm on Python 3.13; the fixtures are in conftest.py): healthy is exit 0 with the auth bug
as a warning, a sniffer in front of a stopped monitor says so, and the hook events it posts
into every open dashboard are announced, marked, and skipped with --no-events."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from sio_sniffer.model.probes import PROBE_SESSION_PREFIX, PROBE_SOURCE
from sio_sniffer.testing import free_port
from tests.integration.mpm_peers import run_cli, twin_monitors


class Dashboard:
    """A client on "/" of the real monitor, as its dashboard connects (no auth), that keeps
    every tool_event it is sent."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.tool_events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.client.on("tool_event", self.tool_events.put)

    async def next_tool_event(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.tool_events.get(), 10)


@pytest.fixture
async def dashboard(mpm_port: int) -> AsyncIterator[Dashboard]:
    dash = Dashboard()
    await dash.client.connect(f"http://127.0.0.1:{mpm_port}", transports=["websocket"])
    yield dash
    await dash.client.disconnect()


async def test_healthy_monitor_exits_0_with_the_auth_bug_as_a_warning(mpm_port: int) -> None:
    """A healthy 6.5 monitor: exit 0 and "healthy"; the unanswered auth CONNECT is a warning
    that names the clients it matters to, not a problem."""
    code, out, err = await run_cli("diagnose", f"http://127.0.0.1:{mpm_port}", "--events", "3",
                                   "--json")
    report = json.loads(out)
    assert code == 0 and report["healthy"] is True, out + err
    assert not [c for c in report["checks"] if c["status"] == "fail"]
    warned = {c["name"]: c for c in report["checks"] if c["status"] == "warn"}
    assert set(warned) == {"auth: valid", "auth: invalid"}
    auth = warned["auth: valid"]
    assert auth["code"] == "auth_connect_unanswered"
    assert "only to clients that send auth" in auth["cause"]
    assert "own dashboard sends no auth" in auth["cause"]
    assert report["warnings"] == 2


async def test_events_are_announced_first_and_marked(mpm_port: int, dashboard: Dashboard
                                                      ) -> None:
    """Before the hook step diagnose says what it sends and where; each event an open dashboard
    gets carries diagnose's session id and source marker."""
    url = f"http://127.0.0.1:{mpm_port}"
    code, out, _ = await run_cli("diagnose", url, "--events", "2")
    assert code == 0, out
    lines = out.splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.startswith("» sending up to 3 test hook")]
    assert f"{url}/api/events" in lines[at] and PROBE_SOURCE in lines[at]
    assert "--no-events" in lines[at]
    assert lines[at + 1].startswith("✓ hook event")
    assert "healthy, 2 warning(s)" in out
    for _ in range(3):
        event = await dashboard.next_tool_event()
        assert event["source"] == PROBE_SOURCE
        assert event["session_id"].startswith(PROBE_SESSION_PREFIX)
        assert event["session_id"].removeprefix(PROBE_SESSION_PREFIX) in lines[at]


async def test_no_events_posts_nothing_to_the_monitor(mpm_port: int, dashboard: Dashboard
                                                      ) -> None:
    """--no-events: the hook steps report "skipped" and no tool_event reaches a dashboard on the
    monitor. Proof without a sleep: an event of our own posted afterwards is the first one the
    dashboard gets (the monitor relays in order on one connection)."""
    url = f"http://127.0.0.1:{mpm_port}"
    code, out, _ = await run_cli("diagnose", url, "--no-events")
    assert code == 0, out
    assert "- hook event       skipped: --no-events" in out
    assert "- timing           skipped: --no-events" in out
    assert "» " not in out
    sentinel = {"namespace": "", "event": "claude_event", "data": {
        "type": "hook", "subtype": "pre_tool", "session_id": "sentinel", "cwd": "/tmp",
        "correlation_id": "sentinel-1", "data": {"tool_name": "Bash"}}}
    async with aiohttp.ClientSession() as http, \
            http.post(f"{url}/api/events", json=sentinel) as response:
        assert response.status < 300
    assert (await dashboard.next_tool_event())["session_id"] == "sentinel"


async def test_monitor_down_behind_the_sniffer_says_the_upstream_is_down() -> None:
    """A `sio-sniffer proxy` in front of a monitor that is not running answers 502 itself:
    diagnose names the upstream as down with the start-it fix, and shows no bytes repr."""
    port = free_port()
    proxy = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "proxy", "--upstream",
        f"http://127.0.0.1:{free_port()}", "--listen", f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        assert proxy.stderr is not None
        assert b"listening on" in await asyncio.wait_for(proxy.stderr.readline(), 20)
        url = f"http://127.0.0.1:{port}"
        code, out, err = await run_cli("diagnose", url)
        js_code, js_out, js_err = await run_cli("diagnose", url, "--json")
    finally:
        proxy.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proxy.wait(), 20)
    assert code == 1 and js_code == 1
    assert "the upstream server is down (the sniffer in front of it could not reach it" in \
        out.lower()
    assert "fix:   Start it" in out
    for shown in (out, err, js_out, js_err):
        assert "b'" not in shown and 'b"' not in shown
    failed = [c for c in json.loads(js_out)["checks"] if c["status"] == "fail"]
    assert [c["code"] for c in failed] == ["upstream_down"]
    assert "sio-sniffer: upstream refused connection" in failed[0]["observed"]


async def test_diagnose_names_two_monitors_on_one_port(mpm_home: Path) -> None:
    """Two real monitors sharing a port (reuse_port): diagnose says two servers, and every
    failure after it is put down to them, not to rooms or a relay handler."""
    port = free_port()
    with twin_monitors(port, mpm_home):
        code, out, err = await run_cli("diagnose", f"http://127.0.0.1:{port}", "--events", "20",
                                       "--json")
    report = json.loads(out)
    assert code == 1 and report["healthy"] is False, out + err
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["one server"]["status"] == "fail"
    assert checks["one server"]["code"] == "two_servers"
    assert "Two servers answer on this port" in checks["one server"]["cause"]
    failed = [c for c in report["checks"] if c["status"] == "fail"]
    assert {c["code"] for c in failed} == {"two_servers"}, failed
    assert checks["handshake"]["status"] == checks["namespace /"]["status"] == "pass"


async def test_diagnose_one_monitor_is_one_server(mpm_port: int) -> None:
    code, out, _ = await run_cli("diagnose", f"http://127.0.0.1:{mpm_port}", "--no-events",
                                 "--json")
    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert code == 0 and checks["one server"]["status"] == "pass", out
