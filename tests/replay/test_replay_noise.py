"""`sio-sniffer replay` as a user types it, against real servers whose payloads carry noise
(times, UUIDs, tokens, counters under arbitrary key names): noise is named and does not fail;
every real change does, named exactly; ``--strict`` and ``--twice``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from sio_sniffer.capture import CaptureReader
from sio_sniffer.replay import build_script
from tests.capture.capture_peers import capturing
from tests.rigs import NODE_ENV, TIMEOUT, listening

HERE = Path(__file__).resolve().parent
SERVERS = {"python": (sys.executable, str(HERE / "noisy_server.py")),
           "node": ("node", str(HERE / "noisy_server.js"))}
PINGS = 5


@pytest.fixture(params=sorted(SERVERS))
async def noisy(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    async with listening(*SERVERS[request.param]) as url:
        yield url


async def _mode(url: str, change: str) -> None:
    async with aiohttp.ClientSession() as http, \
            http.post(f"{url}/mode", params={"change": change}) as resp:
        assert resp.status == 200, await resp.text()


async def _capture(url: str, path: Path) -> None:
    """A client that is greeted, then pings five times (each answered by an event and an ack),
    recorded through the sniffer."""
    got: asyncio.Queue[str] = asyncio.Queue()
    client = socketio.AsyncClient(reconnection=False)

    @client.on("*")
    async def any_event(event: str, *args: Any) -> None:
        await got.put(event)

    async with capturing(url, path) as sniffer:
        await client.connect(sniffer.url, transports=["websocket"], wait_timeout=TIMEOUT)
        assert await asyncio.wait_for(got.get(), TIMEOUT) == "hello"
        for n in range(PINGS):
            ack = await client.call("ping_me", {"n": n}, timeout=TIMEOUT)
            assert ack["ok"] is True
            assert await asyncio.wait_for(got.get(), TIMEOUT) == "pong_back"
        await client.disconnect()


async def _command(path: Path, url: str, *flags: str) -> tuple[int, str]:
    """``sio-sniffer replay`` run as a user types it: its exit status and what it printed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "replay", str(path), "--target", url,
        "--as-fast-as-possible", "--settle", "0.5", *flags,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode in (0, 1), err.decode()
    return proc.returncode, out.decode()


async def _replay(path: Path, url: str, *flags: str) -> tuple[int, dict[str, Any]]:
    rc, out = await _command(path, url, "--json", *flags)
    return rc, json.loads(out)


def _differences(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [d for diffs in result["clients"].values() for d in diffs]


def _noise(result: dict[str, Any]) -> set[tuple[str, str, str, int]]:
    return {(n["where"], n["path"], n["rule"], n["count"])
            for found in result["noise"].values() for n in found}


NOISE = {
    ("/ hello", "sessionKey", "hold the session id", 1),
    ("/ hello", "nonce", "look like random tokens", 1),
    ("/ pong_back", "relayed_at", "look like server time", PINGS),
    ("/ pong_back", "sentAtMs", "look like server time", PINGS),
    ("/ pong_back", "traceRef", "look like UUIDs", PINGS),
    ("/ pong_back", "seq", "changed on every event of their kind in the capture", PINGS),
    ("/ ack of ping_me", "servedAt", "look like server time", PINGS),
}


async def test_unchanged_server_passes_and_names_the_noise(noisy: str, tmp_path: Path) -> None:
    """Against the same running server (its counter going on, its clock later, fresh UUIDs and
    nonces, a new sid inside ``sessionKey``) the replay exits 0 and names each noisy value."""
    cap = tmp_path / "cap.jsonl"
    await _capture(noisy, cap)
    rc, result = await _replay(cap, noisy)
    assert (rc, _differences(result), result["errors"]) == (0, [], [])
    assert _noise(result) == NOISE
    rc, out = await _command(cap, noisy)
    assert rc == 0
    assert "noise: 5 values under relayed_at (/ pong_back) look like server time" in out
    assert "noise: 1 value under nonce (/ hello) looks like a random token" in out
    assert out.rstrip().endswith("replay matches the capture")


async def test_strict_fails_on_the_noise(noisy: str, tmp_path: Path) -> None:
    cap = tmp_path / "cap.jsonl"
    await _capture(noisy, cap)
    rc, result = await _replay(cap, noisy, "--strict")
    assert rc == 1
    # The sid inside sessionKey is still mapped: it differs on every connection by protocol.
    assert _noise(result) == {("/ hello", "sessionKey", "hold the session id", 1)}
    changed = {c.split(":")[0] for d in _differences(result) for c in d["changes"]}
    assert changed == {"nonce", "relayed_at", "sentAtMs", "traceRef", "seq", "servedAt"}


CHANGES = {
    "renamed": [("renamed", "/ pong_back -> pong_reply", [])] * PINGS,
    "dropped": [("changed", "/ pong_back", ['field status dropped (was "ok")'])] * PINGS,
    "value": [("changed", "/ pong_back", ['status: "ok" -> "degraded"'])] * PINGS,
    "missing": [("missing", "/ hello", [])],
    "extra": [("extra", "/ motd", [])],
}


@pytest.mark.parametrize("change", sorted(CHANGES))
async def test_a_changed_server_fails_naming_that_change_only(
        noisy: str, tmp_path: Path, change: str) -> None:
    """Each change of the server, made alone, fails the replay with exactly its differences
    (the noise around them still apart)."""
    cap = tmp_path / "cap.jsonl"
    await _capture(noisy, cap)
    await _mode(noisy, change)
    rc, result = await _replay(cap, noisy)
    assert rc == 1
    got = []
    for d in _differences(result):
        text = d["expected"] if d["kind"] in ("missing", "changed") else d["actual"]
        where = text.split(" [", 1)[0]
        if d["kind"] == "renamed":
            where = f"/ pong_back -> {d['actual'].split(' ')[1]}"
        got.append((d["kind"], where, d["changes"]))
    assert got == [(k, w, c) for k, w, c in CHANGES[change]]
    assert ("/ pong_back", "traceRef", "look like UUIDs", PINGS) in _noise(result) \
        or change == "renamed"


async def test_twice_takes_what_differs_between_two_replays_for_noise(
        noisy: str, tmp_path: Path) -> None:
    """A value that fits no rule by nature and came once in the capture (a visit counter) fails
    a replay; with ``--twice`` it differed between the two replays, so it is noise."""
    await _mode(noisy, "counting")
    cap = tmp_path / "cap.jsonl"
    await _capture(noisy, cap)
    rc, result = await _replay(cap, noisy)
    assert rc == 1
    assert [(d["kind"], d["changes"]) for d in _differences(result)] == [
        ("changed", ["visits: 1 -> 2"])]
    rc, result = await _replay(cap, noisy, "--twice")
    assert (rc, _differences(result)) == (0, [])
    assert _noise(result) == NOISE | {
        ("/ hello", "visits", "differed between the two replays", 1)}


async def test_twice_still_fails_a_real_change(noisy: str, tmp_path: Path) -> None:
    cap = tmp_path / "cap.jsonl"
    await _capture(noisy, cap)
    await _mode(noisy, "value")
    rc, result = await _replay(cap, noisy, "--twice")
    assert rc == 1
    assert {c for d in _differences(result) for c in d["changes"]} == {
        'status: "ok" -> "degraded"'}


async def test_a_namespace_joined_late_is_joined_late_in_the_replay(
        noisy: str, tmp_path: Path) -> None:
    """The captured client joined /late after two pings, and the server tells a late joiner
    how many pings came before: the replay joins when the captured client did, so the server
    says 2 again (a replay connecting every namespace at first would get 0)."""
    cap = tmp_path / "cap.jsonl"
    async with capturing(noisy, cap) as sniffer:
        node = await asyncio.create_subprocess_exec(
            "node", str(HERE / "late_client.js"), sniffer.url, env=NODE_ENV,
            stdout=asyncio.subprocess.PIPE)
        out, _ = await asyncio.wait_for(node.communicate(), TIMEOUT)
    assert out.decode().strip() == "done 2"
    script = build_script(CaptureReader(cap))
    assert [(s.kind, s.nsp) for s in script.steps] == [
        ("connect", "/"), ("emit", "/"), ("emit", "/"), ("join", "/late")]
    rc, result = await _replay(cap, noisy)
    assert (rc, _differences(result), result["errors"]) == (0, [], [])


async def test_ignore_adds_keys_to_the_noise(noisy: str, tmp_path: Path) -> None:
    """``--ignore status`` leaves the changed status uncompared; the noise rules still apply."""
    cap = tmp_path / "cap.jsonl"
    await _capture(noisy, cap)
    await _mode(noisy, "value")
    rc, result = await _replay(cap, noisy, "--ignore", "status")
    assert (rc, _differences(result)) == (0, [])
    assert _noise(result) == NOISE
