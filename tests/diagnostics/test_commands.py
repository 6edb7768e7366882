"""hook-test, auth-test and e2e against the embedded server in both layouts, with real clients."""

from __future__ import annotations

import asyncio
import os
import pty
import sys
from typing import Any

from sio_sniffer.diagnostics.server import Faults
from tests.diagnostics.diag_helpers import run_subcommand, subcommand_env

HOOK = "sio_sniffer.commands.hook_test"
AUTH = "sio_sniffer.commands.auth_test"
E2E = "sio_sniffer.commands.e2e"


async def test_hook_test_http_events_reach_a_dashboard(diag_server: Any, dashboards: Any
                                                       ) -> None:
    """hook-test --mode http on claude-mpm: every POST is 204 and reaches a dashboard client."""
    server, _ = await diag_server("claude-mpm")
    dash = dashboards()
    await dash.connect(server.url)
    result = await run_subcommand(HOOK, server.url, "--mode", "http", "--events", "3")
    assert result.code == 0, result.stdout + result.stderr
    assert result.stdout.count("✓ event") == 3 and "3/3 sent" in result.stdout
    seen = [(await dash.next_named(name))[1][0]["subtype"]
            for name in ("tool_event", "tool_event", "claude_event")]
    assert seen == ["pre_tool", "post_tool", "user_prompt"]


async def test_hook_test_socketio_on_claude_mpm_names_the_namespace(diag_server: Any) -> None:
    """hook-test --mode socketio on claude-mpm: /hook is refused; the fix says use --mode http."""
    server, _ = await diag_server("claude-mpm")
    result = await run_subcommand(HOOK, server.url, "--mode", "socketio", "--json")
    assert result.code == 2
    report = result.json()
    assert report["connected"] is False and "Unable to connect" in report["problem"]
    assert "--mode http" in report["problem"]


async def test_hook_test_socketio_on_namespaces_layout(diag_server: Any, dashboards: Any
                                                       ) -> None:
    """hook-test --mode socketio on the namespaces layout: acked emits reach `/` dashboards;
    CLAUDE_MPM_HOOK_DEBUG shows the packets."""
    server, _ = await diag_server("namespaces")
    dash = dashboards()
    await dash.connect(server.url, auth={"token": "dev-token"})
    result = await run_subcommand(HOOK, server.url, "--mode", "socketio", "--events", "2",
                                  env=subcommand_env(CLAUDE_MPM_HOOK_DEBUG="true"))
    assert result.code == 0, result.stdout + result.stderr
    assert result.stdout.count("✓ event") == 2 and "acked" in result.stdout
    assert "0 disconnect(s)" in result.stdout
    assert "[engineio.client]" in result.stderr and "[socketio.client]" in result.stderr
    _, args = await dash.next_named("claude_event")
    assert args[0]["subtype"] == "pre_tool"


async def test_hook_test_http_reports_500s(diag_server: Any) -> None:
    """hook-test --continuous against a server answering 500: each send ✗ with the status."""
    server, _ = await diag_server("namespaces", faults=Faults(hook_status=500))
    result = await run_subcommand(HOOK, server.url, "--continuous", "0.5", "--interval", "0.1")
    assert result.code == 1
    assert "✗ event 0: HTTP 500" in result.stdout and "✓" not in result.stdout


async def test_auth_test_namespaces_layout_all_pass(diag_server: Any) -> None:
    """auth-test on the namespaces layout: every test passes with the right observation."""
    server, _ = await diag_server("namespaces")
    result = await run_subcommand(AUTH, server.url, "--json", "--timeout", "1")
    assert result.code == 0, result.stdout
    tests = {t["name"]: t for t in result.json()["tests"]}
    assert set(tests) == {"auth: none", "auth: valid", "auth: invalid", "namespace /hook",
                          "namespace /system", "connect timeout", "reconnection"}
    assert all(t["status"] == "pass" for t in tests.values())
    assert "Authentication token required" in tests["auth: none"]["observed"]
    assert "Invalid authentication token" in tests["auth: invalid"]["observed"]


async def test_auth_test_claude_mpm_layout(diag_server: Any) -> None:
    """auth-test on claude-mpm: no auth checked, and /hook and /system fail as missing."""
    server, _ = await diag_server("claude-mpm")
    result = await run_subcommand(AUTH, server.url, "--timeout", "1")
    assert result.code == 1
    assert "checks no auth at all" in result.stdout
    assert "✗ namespace /hook" in result.stdout and "✗ namespace /system" in result.stdout
    assert "✓ reconnection" in result.stdout


async def test_auth_test_unanswered_auth_connect(diag_server: Any) -> None:
    """auth-test against claude-mpm's auth bug: the valid-token test warns of the unanswered
    CONNECT; clients without auth get in, so it is no failure."""
    server, _ = await diag_server("claude-mpm", faults=Faults(ignore_auth_connect=True))
    result = await run_subcommand(AUTH, server.url, "--json", "--timeout", "1", "--nsp")
    tests = {t["name"]: t for t in result.json()["tests"]}
    assert result.code == 0
    assert tests["auth: valid"]["code"] == "auth_connect_unanswered"
    assert tests["auth: valid"]["status"] == "warn"
    assert tests["auth: none"]["status"] == "pass"


async def test_e2e_embedded_all_delivered() -> None:
    """e2e with its own server: all events delivered through the sniffer; no bar redraws when
    stderr is not a terminal."""
    result = await run_subcommand(E2E, "--events", "50")
    assert result.code == 0, result.stdout + result.stderr
    assert "delivered 50/50, lost 0" in result.stdout and "latency p50" in result.stdout
    assert "\r[" not in result.stderr


async def test_e2e_draws_a_progress_bar_on_a_terminal() -> None:
    """On a terminal, e2e redraws a progress bar on stderr up to N/N delivered."""
    master, slave = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "e2e", "--events", "20",
        stdout=asyncio.subprocess.PIPE, stderr=slave, env=subcommand_env())
    os.close(slave)

    def read_terminal() -> bytes:
        chunks = []
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)

    terminal = asyncio.create_task(asyncio.to_thread(read_terminal))
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    err = (await asyncio.wait_for(terminal, 10)).decode()
    os.close(master)
    assert proc.returncode == 0 and b"delivered 20/20, lost 0" in out
    assert "\r[" in err and "20/20 delivered" in err


async def test_e2e_target_that_drops_events(diag_server: Any) -> None:
    """e2e --target against a server dropping hook events: all lost, exit 1, lost flags."""
    server, _ = await diag_server("claude-mpm", faults=Faults(drop_hook_events=True))
    result = await run_subcommand(E2E, "--events", "3", "--target", server.url, "--json")
    assert result.code == 1
    report = result.json()
    assert report["delivered"] == 0 and report["lost"] == 3
    assert any(f["flag"] == "lost" for f in report["flags"])
