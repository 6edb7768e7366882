"""Capture real sessions through the Sniffer, then replay them and serve them back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import socketio

from sio_sniffer.capture import CaptureReader
from sio_sniffer.replay import ServedCapture, build_script, replay
from tests.capture.capture_peers import TOKEN, AppServer, capture_session


@pytest.fixture
async def server() -> AsyncIterator[AppServer]:
    srv = AppServer()
    await srv.start()
    yield srv
    await srv.stop()


def test_capture_holds_both_clients_and_their_traffic(captured: Path) -> None:
    """The capture scripts two clients: polling->websocket with 2 namespaces, and websocket."""
    reader = CaptureReader(captured)
    script = build_script(reader)
    assert reader.problems == []
    assert len(script.clients) == 2
    by_transport = {tuple(c.transports): c for c in script.clients.values()}
    py = by_transport[("polling", "websocket")]
    node = by_transport[("websocket",)]
    assert py.namespaces == ["/", "/admin"] and node.namespaces == ["/"]
    # Both asked for at once, before the server answered either: one first connect, no join.
    assert py.first_namespaces == ["/", "/admin"]
    assert "join" not in [s.kind for s in script.steps]
    assert py.auth == {"token": TOKEN} and node.auth == {"token": TOKEN}
    names = [(o.kind, o.name) for o in py.expected]
    assert ("ack", "echo") in names and ("event", "bin_back") in names
    assert ("ack", "stats") in names and ("event", "hook_event") in names
    assert any(k == ("/", "question", 0) for k in py.replies)
    bin_back = next(o for o in node.expected if o.name == "bin_back")
    assert bin_back.args == [b"\x03\x02\x01"]
    assert [s.kind for s in script.steps].count("http") == 1


async def test_replay_against_the_same_server_matches(captured: Path, server: AppServer) -> None:
    """Replaying against the same server gives an empty diff for every client."""
    script = build_script(CaptureReader(captured))
    result = await replay(script, server.url, speed=None, settle=0.5)
    assert result.errors == []
    assert {cid: d for cid, d in result.differences.items() if d} == {}
    assert result.ok
    assert sum(len(v) for v in result.actual.values()) == sum(
        len(c.expected) for c in script.clients.values()) + len(script.http_expected)


async def test_replay_with_timing_keeps_order(captured: Path, server: AppServer) -> None:
    """A timed replay (speed 4) also matches: order and acks survive real waits."""
    script = build_script(CaptureReader(captured))
    result = await replay(script, server.url, speed=4.0, settle=0.5)
    assert result.ok, result.text()


async def test_replay_against_a_changed_server_names_the_difference(captured: Path) -> None:
    """Against a server whose echo payload changed and that stopped sending bin_back, the diff
    says so per client and the replay does not match."""
    changed = AppServer(changed=True)
    await changed.start()
    try:
        result = await replay(build_script(CaptureReader(captured)), changed.url, speed=None,
                              settle=0.5)
    finally:
        await changed.stop()
    assert not result.ok
    kinds = {(d.kind, (d.expected or d.actual).name)  # type: ignore[union-attr]
             for diffs in result.differences.values() for d in diffs}
    assert kinds == {("changed", "echoed"), ("missing", "bin_back")}
    text = result.text()
    assert "changed: / echoed" in text and '"extra":true' in text
    assert "missing: / bin_back" in text


async def test_capture_without_secrets_needs_auth_from_the_user(
        tmp_path: Path, server: AppServer) -> None:
    """Without show_secrets the auth is a fingerprint: replay is refused by the server until
    the user passes the auth, then it matches."""
    path = tmp_path / "nosecrets.jsonl"
    await capture_session(server.url, path, show_secrets=False, node=False)
    assert TOKEN not in path.read_text()
    script = build_script(CaptureReader(path))
    assert script.needs_auth
    refused = await replay(script, server.url, speed=None, settle=0.3)
    assert not refused.ok
    assert any("bad token" in e or "connect" in e for e in refused.errors)
    result = await replay(script, server.url, speed=None, settle=0.5, auth={"token": TOKEN})
    assert result.ok, result.text()


async def test_serve_plays_the_captured_server_side_in_order(captured: Path) -> None:
    """--serve makes a real client receive the captured server events in the captured order."""
    script = build_script(CaptureReader(captured))
    source = max(script.clients.values(), key=lambda c: len(c.expected))
    want = [(o.name, o.args) for o in source.expected if o.kind == "event" and o.nsp == "/"]
    served = ServedCapture(script, speed=None)
    await served.start("127.0.0.1", 0)
    client = socketio.AsyncClient(reconnection=False)
    got: list[tuple[str, Any]] = []
    done = asyncio.Event()

    @client.on("*")
    async def any_event(event: str, *args: Any) -> None:
        got.append((event, list(args)))
        if len(got) == len(want):
            done.set()

    try:
        await client.connect(served.url, wait_timeout=10)
        await asyncio.wait_for(done.wait(), 10)
        await client.disconnect()
    finally:
        await served.stop()
    # The captured welcome names the captured sid; the served one is the same bytes.
    assert got == want
    assert [n for n, _ in got][:2] == ["welcome", "echoed"]
