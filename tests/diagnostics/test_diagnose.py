"""`diagnose` against the embedded server, healthy and broken each way, text and --json."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from sio_sniffer import model
from sio_sniffer.diagnostics.server import Faults
from sio_sniffer.model.probes import PROBE_SESSION_PREFIX, PROBE_SOURCE
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
    assert "» sending up to 6 test hook events" in text.stdout  # announced before it sends
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


async def test_unanswered_auth_connect_is_a_warning_when_no_auth_gets_in(
        diag_server: Any) -> None:
    """claude-mpm's auth bug on a server that lets clients in without auth (as its own
    dashboard connects): a warning with cause and fix, shown with '!', and exit 0."""
    server, _ = await diag_server("claude-mpm", faults=Faults(ignore_auth_connect=True))
    text, js = await both(server.url)
    assert text.code == 0 and js.code == 0, text.stdout + text.stderr
    assert "! auth: valid" in text.stdout and "✗" not in text.stdout
    assert "healthy, 2 warning(s)" in text.stdout
    checks = {c["name"]: c for c in js.json()["checks"]}
    valid = checks["auth: valid"]
    assert valid["status"] == "warn" and valid["code"] == "auth_connect_unanswered"
    assert "own dashboard sends no auth" in valid["cause"] and "auth=None" in valid["fix"]
    assert checks["auth: invalid"]["status"] == "warn"
    assert js.json()["warnings"] == 2


async def test_probe_events_are_marked_and_no_events_sends_none(diag_server: Any) -> None:
    """Every probe event carries diagnose's session id and source marker; with --no-events
    none reaches the server, the hook steps say "skipped", and nothing is announced."""
    server, rec = await diag_server("claude-mpm")
    marked = await run_subcommand(MODULE, server.url, "--events", "2", "--timeout", "1",
                                  "--json")
    assert marked.code == 0, marked.stdout + marked.stderr
    (announced,) = marked.json()["notes"]
    assert "sio-sniffer diagnose" in announced and "» " + announced in marked.stderr
    relayed = rec.of(model.BROADCAST, name="tool_event")
    assert len(relayed) == 3
    for record in relayed:
        data = record.args[0]
        assert data["source"] == PROBE_SOURCE
        assert data["session_id"].startswith(PROBE_SESSION_PREFIX)
    before = len(rec.of(model.HTTP, path="/api/events"))
    quiet = await run_subcommand(MODULE, server.url, "--timeout", "1", "--no-events",
                                 "--json")
    assert quiet.code == 0 and quiet.json()["notes"] == [] and "»" not in quiet.stderr
    statuses = {c["name"]: c for c in quiet.json()["checks"]}
    assert statuses["hook event"]["status"] == statuses["timing"]["status"] == "skip"
    assert "--no-events" in statuses["hook event"]["observed"]
    assert len(rec.of(model.HTTP, path="/api/events")) == before


async def test_bad_url_could_not_run() -> None:
    """A URL that is not http(s) is refused before anything runs: exit 2."""
    result = await run_subcommand(MODULE, "localhost:8765")
    assert result.code == 2 and "not an http(s) URL" in result.stderr
