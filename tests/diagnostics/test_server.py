"""The diagnostic server in both layouts and with each fault, against real python-socketio peers."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

import aiohttp
import pytest
import socketio

from sio_sniffer import model
from sio_sniffer.diagnostics.server import (
    SEED_NAMESPACES,
    DiagnosticServer,
    Faults,
    event_name_for,
    fingerprint,
    room_for,
)
from tests.diagnostics.diag_helpers import RUNNER, Dashboard, hook_body, subcommand_env
from tests.paths import ROOT


async def post(url: str, body: Any) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(url + "/api/events", json=body) as r:
        return r.status, await r.text()


async def test_hook_post_reaches_every_dashboard_unwrapped(diag_server: Any, dashboards: Any
                                                           ) -> None:
    """claude-mpm layout: a hook POST is answered 204 and broadcast, unwrapped, to all clients."""
    server, rec = await diag_server("claude-mpm")
    polling, ws = dashboards(), dashboards()
    await polling.connect(server.url, transports=["polling"])
    await ws.connect(server.url, transports=["websocket"])
    status, _ = await post(server.url, hook_body("pre_tool", tool_name="Bash"))
    assert status == 204
    expected = {"type": "hook", "subtype": "pre_tool", "data": {"tool_name": "Bash"},
                "timestamp": "2026-01-01T00:00:00Z", "session_id": "sess-1",
                "source": "claude_hooks", "correlation_id": "corr-1", "cwd": "/work/project"}
    for dash in (polling, ws):
        _, args = await dash.next_named("tool_event")
        assert args == [expected]
    broadcast = await rec.wait(model.BROADCAST, name="tool_event")
    assert sorted(broadcast.get("recipients")) == sorted(server.clients("/"))
    assert broadcast.get("ok") is True
    http = await rec.wait(model.HTTP, path="/api/events")
    assert http.get("status") == 204


def test_event_names_follow_the_monitor_categories() -> None:
    """Hook subtypes map to the dashboard's event names; unknown ones go as claude_event."""
    assert event_name_for("hook", "post_tool") == "tool_event"
    assert event_name_for("hook", "subagent_stop") == "hook_event"
    assert event_name_for("session", "start") == "session_event"
    assert event_name_for("hook", "user_prompt") == "claude_event"


async def test_client_claude_event_is_rebroadcast_to_sender_too(diag_server: Any,
                                                                dashboards: Any) -> None:
    """claude-mpm layout: an emitted claude_event comes back to everyone as hook:event and
    claude_event."""
    server, _ = await diag_server("claude-mpm")
    sender, other = dashboards(), dashboards()
    await sender.connect(server.url)
    await other.connect(server.url)
    await sender.client.emit("claude_event", {"type": "hook", "subtype": "stop"})
    for dash in (sender, other):
        assert (await dash.next_named("hook:event"))[1] == [{"type": "hook", "subtype": "stop"}]
        assert (await dash.next_named("claude_event"))[1] == [{"type": "hook",
                                                               "subtype": "stop"}]


async def test_welcome_count_health_and_page(diag_server: Any, dashboards: Any) -> None:
    """claude-mpm layout: dashboard:welcome, dashboard:client:count, /health JSON and a page."""
    server, _ = await diag_server("claude-mpm")
    dash = dashboards()
    await dash.connect(server.url)
    _, welcome = await dash.next_named("dashboard:welcome")
    assert welcome[0]["client_id"] == dash.client.get_sid("/")
    _, count = await dash.next_named("dashboard:client:count")
    assert count == [{"count": 1}]
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/health") as r:
            health = await r.json()
        async with http.get(server.url + "/") as r:
            page = await r.text()
    assert health["status"] == "running" and health["namespaces"] == ["/"]
    assert "claude" not in json.dumps(health) and "mpm" not in json.dumps(health)
    assert "/api/events" in page


async def test_claude_mpm_layout_refuses_hook_namespace(diag_server: Any, dashboards: Any
                                                        ) -> None:
    """claude-mpm layout: only `/` exists, so a client on /hook gets a connect error."""
    server, rec = await diag_server("claude-mpm")
    dash = dashboards()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await dash.connect(server.url, namespaces=["/hook"], wait_timeout=2)
    assert not rec.of(model.SIO_CONNECT, nsp="/hook")


async def test_bad_hook_json_is_a_500_like_the_monitor(diag_server: Any) -> None:
    """claude-mpm layout: a body that is not JSON is answered 500 with the error's text."""
    server, rec = await diag_server("claude-mpm")
    async with aiohttp.ClientSession() as http, \
            http.post(server.url + "/api/events", data=b"{not json") as r:
        assert r.status == 500
        assert (await r.text()).startswith("Error: ")
    assert (await rec.wait(model.HTTP)).get("status") == 500


async def test_namespaces_layout_auth_and_rooms(diag_server: Any, dashboards: Any) -> None:
    """namespaces layout: no token and a wrong token are refused; dev-token joins <ns>_room."""
    server, rec = await diag_server("namespaces")
    anonymous, wrong = dashboards(), dashboards()
    with pytest.raises(socketio.exceptions.ConnectionError):
        await anonymous.connect(server.url, namespaces=["/hook"], wait_timeout=2)
    assert anonymous.connect_errors["/hook"] == {"message": "Authentication token required"}
    with pytest.raises(socketio.exceptions.ConnectionError):
        await wrong.connect(server.url, namespaces=["/hook"], auth={"token": "nope"},
                            wait_timeout=2)
    assert wrong.connect_errors["/hook"] == {"message": "Invalid authentication token"}
    good = dashboards()
    await good.connect(server.url, namespaces=list(SEED_NAMESPACES),
                       auth={"token": "dev-token"})
    for namespace in SEED_NAMESPACES:
        assert good.client.get_sid(namespace) in server.clients(namespace, room_for(namespace))
    attempts = rec.of(model.SIO_CONNECT, nsp="/hook")
    assert {r.get("auth") for r in attempts} >= {None, fingerprint({"token": "nope"}),
                                                 fingerprint({"token": "dev-token"})}
    assert "dev-token" not in json.dumps([r.to_dict() for r in rec.records])


async def test_namespaces_layout_relays_hook_events_to_dashboards(diag_server: Any,
                                                                 dashboards: Any) -> None:
    """namespaces layout: an event emitted on /hook is acked and relayed to `/` dashboards."""
    server, rec = await diag_server("namespaces", token="s3cret")
    hook, dash = dashboards(), dashboards()
    await dash.connect(server.url, auth={"token": "s3cret"})
    await hook.connect(server.url, namespaces=["/hook", "/system"], auth={"token": "s3cret"})
    ack = await hook.client.call("claude_event", {"subtype": "pre_tool"}, namespace="/hook")
    assert ack == {"status": "received", "event": "claude_event"}
    namespace, args = await dash.next_named("claude_event")
    assert (namespace, args) == ("/", [{"subtype": "pre_tool"}])
    status, _ = await post(server.url, hook_body("post_tool"))
    assert status == 204
    assert (await dash.next_named("tool_event"))[1][0]["subtype"] == "post_tool"
    relays = rec.of(model.BROADCAST, name="claude_event", room="root_room")
    assert relays and relays[0].get("recipients") == [dash.client.get_sid("/")]


async def test_fault_reject_namespaces(diag_server: Any, dashboards: Any) -> None:
    """Fault reject_namespaces: the namespaces layout keeps `/` and refuses /hook."""
    server, _ = await diag_server("namespaces", faults=Faults(reject_namespaces=True))
    await dashboards().connect(server.url, auth={"token": "dev-token"})
    with pytest.raises(socketio.exceptions.ConnectionError):
        await dashboards().connect(server.url, namespaces=["/hook"],
                                   auth={"token": "dev-token"}, wait_timeout=2)


async def test_fault_ignore_auth_connect(diag_server: Any, dashboards: Any) -> None:
    """Fault ignore_auth_connect: a CONNECT with auth is never answered; without auth it is."""
    server, rec = await diag_server("claude-mpm", faults=Faults(ignore_auth_connect=True))
    await dashboards().connect(server.url)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await dashboards().connect(server.url, auth={"token": "dev-token"}, wait_timeout=1)
    unanswered = await rec.wait(model.SIO_CONNECT_ERROR, answered=False)
    assert unanswered.nsp == "/"


async def test_fault_drop_hook_events(diag_server: Any, dashboards: Any) -> None:
    """Fault drop_hook_events: the POST is still 204, but no dashboard receives anything."""
    server, rec = await diag_server("claude-mpm", faults=Faults(drop_hook_events=True))
    dash = dashboards()
    await dash.connect(server.url)
    await dash.next_named("dashboard:client:count")
    assert (await post(server.url, hook_body()))[0] == 204
    await rec.wait(model.HTTP, status=204)
    assert not rec.of(model.BROADCAST, name="tool_event")
    assert dash.events.empty()


async def test_fault_polling_only(diag_server: Any, dashboards: Any) -> None:
    """Fault polling_only: no upgrade offered and a WebSocket-only client cannot connect."""
    server, _ = await diag_server("claude-mpm", faults=Faults(polling_only=True))
    polling = dashboards()
    await polling.connect(server.url)
    assert polling.client.transport() == "polling"
    with pytest.raises(socketio.exceptions.ConnectionError):
        await dashboards().connect(server.url, transports=["websocket"])


async def test_fault_ping_times_out(diag_server: Any, dashboards: Any) -> None:
    """Fault ping_times_out: a WebSocket client loses the server within a few seconds."""
    server, _ = await diag_server("claude-mpm", faults=Faults(ping_times_out=True))
    dash = dashboards()
    await dash.connect(server.url, transports=["websocket"])
    await asyncio.wait_for(dash.disconnected.wait(), 5)


async def test_fault_hook_status_500(diag_server: Any, dashboards: Any) -> None:
    """Fault hook_status=500: hook POSTs fail with 500 and nothing is relayed."""
    server, rec = await diag_server("claude-mpm", faults=Faults(hook_status=500))
    status, text = await post(server.url, hook_body())
    assert status == 500 and "simulated failure" in text
    assert not rec.of(model.BROADCAST, source="http")


async def test_fault_slow_ingest(diag_server: Any) -> None:
    """Fault slow_ingest_ms: the POST is answered no sooner than the configured delay."""
    server, rec = await diag_server("claude-mpm", faults=Faults(slow_ingest_ms=150))
    assert (await post(server.url, hook_body()))[0] == 204
    assert (await rec.wait(model.HTTP)).get("duration_ms") >= 150


async def test_fault_wrong_name_no_correlation_twice(diag_server: Any, dashboards: Any) -> None:
    """Faults wrong_event_name, drop_correlation_id and emit_twice shape what dashboards get."""
    faults = Faults(wrong_event_name="mpm_event", drop_correlation_id=True, emit_twice=True)
    server, _ = await diag_server("claude-mpm", faults=faults)
    dash = dashboards()
    await dash.connect(server.url)
    assert (await post(server.url, hook_body()))[0] == 204
    first = await dash.next_named("mpm_event")
    second = await dash.next_named("mpm_event")
    assert first == second
    assert "correlation_id" not in first[1][0] and first[1][0]["cwd"] == "/work/project"


async def test_fault_relay_room(diag_server: Any, dashboards: Any) -> None:
    """Fault relay_room: the relay goes to a room nobody joined and is logged as failed."""
    server, rec = await diag_server("claude-mpm", faults=Faults(relay_room="nobody_room"))
    dash = dashboards()
    await dash.connect(server.url)
    assert (await post(server.url, hook_body()))[0] == 204
    relay = await rec.wait(model.BROADCAST, name="tool_event")
    assert relay.get("ok") is False and relay.get("room") == "nobody_room"
    assert "no client" in relay.get("error")


@pytest.mark.parametrize("layout", ["claude-mpm", "namespaces"])
async def test_serve_command_logs_json(layout: str) -> None:
    """`serve` in each layout: real clients get hook events, stdout carries JSON records."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUNNER, "sio_sniffer.commands.serve", "--port", "0",
        "--layout", layout, "--token", "t0k3n", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=subcommand_env(), cwd=ROOT)
    assert proc.stderr is not None and proc.stdout is not None
    try:
        notice = (await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
        url = notice.split(" on ")[1].split(" ")[0]
        dash = Dashboard()
        await dash.connect(url, auth={"token": "t0k3n"})
        assert (await post(url, hook_body("subagent_start")))[0] == 204
        _, args = await dash.next_named("hook_event")
        assert args[0]["subtype"] == "subagent_start"
        await dash.client.disconnect()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in out.decode().splitlines()]
    kinds = {line["event"] for line in lines}
    assert {"sio.connect", "sio.connect_ok", "http", "broadcast", "sio.disconnect"} <= kinds
    connect = next(line for line in lines if line["event"] == "sio.connect")
    assert connect["auth"] == fingerprint({"token": "t0k3n"})
    assert "t0k3n" not in out.decode()


async def test_serve_port_in_use_exits_2(diag_server: Any) -> None:
    """`serve` on a taken port exits 2 with a one-line reason."""
    server, _ = await diag_server("claude-mpm")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUNNER, "sio_sniffer.commands.serve", "--port",
        str(server.port), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=subcommand_env(), cwd=ROOT)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert "cannot listen" in err.decode() and "--port" in err.decode()


def test_unknown_layout_is_refused() -> None:
    """An unknown layout is a clear ValueError naming the choices."""
    with pytest.raises(ValueError, match="claude-mpm, namespaces"):
        DiagnosticServer("socketio")

