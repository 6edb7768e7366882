"""`report a.jsonl b.jsonl` of two sniffers' captures of one healthy cluster (python-socketio
nodes on a real redis-server; hooks into node A, chats from node B, a dashboard on each node)
whose clocks disagree: each capture's offset is estimated from the events they share, the
merged judgement stays right with 50 ms and with 2 s of skew, and the report says the offsets
it used. Taken raw (``--clock-offset`` of 0), the skew makes healthy events look unrelayed."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.cluster.cluster_peers import Dashboard, at_least, nodes, redis_server, until
from tests.rigs import generic, judging

EVENTS = 6


def _captured(folder: Path, dashboards: str) -> tuple[Path, Path]:
    """One healthy cluster run, captured by the sniffer of each node (no --cluster), with a
    dashboard on each node ``dashboards`` names."""
    a_file, b_file = folder / "a.jsonl", folder / "b.jsonl"

    async def run() -> None:
        async with redis_server() as redis, nodes(redis.url, 0, 0) as (a, b), \
                judging(a.server.url, generic(1.0), capture=str(a_file)) as (sa, _), \
                judging(b.server.url, generic(1.0), capture=str(b_file)) as (sb, _):
            urls = {"A": sa.url, "B": sb.url}
            on = [await Dashboard().connect(urls[n]) for n in dashboards]
            chatter = await Dashboard().connect(sb.url, join=False)
            await until(lambda: at_least(redis.listeners(), 2))
            async with aiohttp.ClientSession() as http:
                for i in range(EVENTS):
                    async with http.post(f"{sa.url}/api/events",
                                         json={"session_id": f"session-{i:04d}"}) as r:
                        assert r.status == 200
                    await chatter.client.emit("chat", {"text": f"chat message {i:04d}"})
            await until(lambda: all(len(d.got) == 2 * EVENTS for d in on))
            for client in (*on, chatter):
                await client.client.disconnect()

    asyncio.run(run())
    return a_file, b_file


@pytest.fixture(scope="module")
def captures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Pairs both ways: hooks into A reach B's dashboard, chats from B reach A's."""
    return _captured(tmp_path_factory.mktemp("both-ways"), "AB")


@pytest.fixture(scope="module")
def one_way(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The only dashboard on A: B's chats are delivered on A alone."""
    return _captured(tmp_path_factory.mktemp("one-way"), "A")



def _skewed(source: Path, target: Path, skew: float) -> Path:
    """``source`` as a host whose clock is ``skew`` seconds ahead would have stamped it."""
    def move(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (v + skew if k == "ts" and isinstance(v, float) else
                        _iso(v, skew) if k == "ts" and isinstance(v, str) else move(v))
                    for k, v in value.items()}
        if isinstance(value, list):
            return [move(v) for v in value]
        return value

    lines = source.read_text().splitlines()
    moved = [json.dumps(move(json.loads(line))) for line in lines[1:]]
    target.write_text("\n".join([lines[0], *moved]) + "\n")
    return target


def _iso(text: str, skew: float) -> str:
    moved = datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() + skew
    return datetime.fromtimestamp(moved, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _report(*args: str) -> dict[str, Any]:
    import subprocess

    done = subprocess.run([sys.executable, "-m", "sio_sniffer", "report", *args, "--json",
                           "--deadline", "1"], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _lost(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in report["flags"] if f.get("flag") == "lost"]


@pytest.mark.parametrize("skew", [0.05, -0.05, 2.0])
def test_the_merged_report_estimates_the_skew_and_judges_right(
        captures: tuple[Path, Path], tmp_path: Path, skew: float) -> None:
    a_file, b_file = captures
    b_skewed = _skewed(b_file, tmp_path / "b.jsonl", skew)
    report = _report(str(a_file), str(b_skewed))
    assert _lost(report) == []
    assert report["summary"]["expectations"]["matched"] == 2 * EVENTS
    reference, other = report["clock_offsets"]
    assert reference == {"file": str(a_file), "offset_s": 0.0, "pairs": 0, "how": "reference"}
    assert other["how"] == "estimated" and other["pairs"] >= 2 * EVENTS
    # Corrected to within a few milliseconds (the nodes relay over loopback).
    assert abs(other["offset_s"] + skew) < 0.01, other


def test_a_given_offset_is_used_and_raw_stamps_of_a_skew_look_lost(
        one_way: tuple[Path, Path], tmp_path: Path) -> None:
    a_file, b_file = one_way
    b_skewed = _skewed(b_file, tmp_path / "b.jsonl", -2.0)
    estimated = _report(str(a_file), str(b_skewed))
    assert _lost(estimated) == []
    assert abs(estimated["clock_offsets"][1]["offset_s"] - 2.0) < 0.01
    report = _report(str(a_file), str(b_skewed), "--clock-offset", f"{b_skewed}=0")
    assert report["clock_offsets"][1] == {"file": str(b_skewed), "offset_s": 0.0, "pairs": 0,
                                          "how": "given"}
    # Node B's clock 2 s behind: each chat from B seems to reach A 2 s after it, past the
    # deadline, so none of them is seen relayed (and the kind is called never relayed).
    assert report["summary"]["expectations"]["matched"] == EVENTS
    assert [f["flag"] for f in report["flags"]] == ["never_relayed"]
    assert estimated["summary"]["expectations"]["matched"] == 2 * EVENTS
    given = _report(str(a_file), str(b_skewed), "--clock-offset", f"{b_skewed}=2")
    assert _lost(given) == [] and given["flags"] == []
