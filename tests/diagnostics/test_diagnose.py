"""`diagnose` against the embedded server, healthy and broken each way, text and --json."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from sio_sniffer.diagnostics.server import Faults
from tests.diagnostics.diag_helpers import Finished, run_subcommand

MODULE = "sio_sniffer.commands.diagnose"


async def both(url: str, *argv: str) -> tuple[Finished, Finished]:
    """The text and the --json run, side by side (probe events carry their own nonces)."""
    text, js = await asyncio.gather(
        run_subcommand(MODULE, url, "--events", "5", "--timeout", "1", *argv),
        run_subcommand(MODULE, url, "--events", "5", "--timeout", "1", "--json", *argv))
    return text, js


def failing(result: Finished) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in result.json()["checks"] if c["status"] == "fail"}


@pytest.mark.parametrize(("layout", "argv"), [
    ("claude-mpm", ()),
    ("namespaces", ("--nsp", "/hook", "/system", "--token", "dev-token")),
])
async def test_healthy_server_exits_0(diag_server: Any, layout: str, argv: tuple[str, ...]
                                      ) -> None:
    """The healthy embedded server passes every check: exit 0, no ✗, JSON says healthy."""
    server, _ = await diag_server(layout)
    text, js = await both(server.url, *argv)
    assert text.code == 0, text.stdout + text.stderr
    assert "✗" not in text.stdout and "healthy" in text.stdout
    assert "✓ hook event" in text.stdout and "✓ reconnection" in text.stdout
    report = js.json()
    assert js.code == 0 and report["healthy"] is True and report["sniffer"]
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["timing"] == "pass" and statuses["handshake"] == "pass"
    assert not [f for f in report["flags"] if f["flag"] in ("lost", "connect_unanswered")]


async def test_nothing_listening() -> None:
    """Nothing on the port: TCP fails with 'server not running' and the start-it fix; exit 1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    text, js = await both(f"http://127.0.0.1:{port}")
    assert text.code == 1 and js.code == 1
    assert "✗ tcp" in text.stdout
    assert "not running" in text.stdout and "Start the server first" in text.stdout
    tcp = failing(js)["tcp"]
    assert tcp["code"] == "server_not_running" and "port conflicts" in tcp["fix"]
    assert {c["name"]: c["status"] for c in js.json()["checks"]}["hook event"] == "skip"


CASES = [
    ("namespaces", Faults(reject_namespaces=True), ("--nsp", "/hook", "/system"),
     "namespace /hook", "namespace_missing", "Unable to connect", "register the namespace"),
    ("claude-mpm", Faults(ignore_auth_connect=True), (), "auth: valid",
     "auth_connect_unanswered", "never answered", "auth=None"),
    ("claude-mpm", Faults(drop_hook_events=True), (), "hook event", "not_relayed",
     "nothing reached the dashboard", "join the correct rooms"),
    ("claude-mpm", Faults(polling_only=True), (), "websocket", "polling_only",
     "runs polling only", "Upgrade"),
    ("claude-mpm", Faults(ping_times_out=True), (), "heartbeat", "ping_timeout",
     "ping timeout", "Raise ping_timeout"),
    ("claude-mpm", Faults(hook_status=500), (), "hook event", "hook_rejected", "HTTP 500",
     "under 1 MiB"),
]


@pytest.mark.parametrize(("layout", "faults", "argv", "check", "code", "seen", "fix"), CASES,
                         ids=[c[1].active()[0] for c in CASES])
async def test_broken_server_named_with_cause_and_fix(
        diag_server: Any, layout: str, faults: Faults, argv: tuple[str, ...], check: str,
        code: str, seen: str, fix: str) -> None:
    """Each broken server fails the right check, with its cause and fix in text and JSON."""
    server, _ = await diag_server(layout, faults=faults)
    text, js = await both(server.url, *argv)
    assert text.code == 1 and js.code == 1, text.stdout + text.stderr
    lines = text.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"✗ {check}"))
    block = "\n".join(lines[at:at + 3])
    assert "cause:" in block and "fix:" in block and fix in block
    assert seen in text.stdout
    found = failing(js)[check]
    assert found["code"] == code and fix in found["fix"] and found["cause"]


async def test_bad_url_could_not_run() -> None:
    """A URL that is not http(s) is refused before anything runs: exit 2."""
    result = await run_subcommand(MODULE, "localhost:8765")
    assert result.code == 2 and "not an http(s) URL" in result.stderr
