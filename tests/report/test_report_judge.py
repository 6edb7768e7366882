"""`report` judges at the capture's end as the live proxy did, and lists what it cannot judge.

Real peers: the app server swallows a hook POST, a python-socketio dashboard is connected, and
the traffic goes through `sio-sniffer proxy --capture` run as a child process.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from sio_sniffer import model
from sio_sniffer.capture import parse_iso
from sio_sniffer.model import flags as F
from tests.capture.capture_peers import TOKEN, AppServer
from tests.conftest import free_port
from tests.report.test_report import sniffer

Log = list[dict[str, Any]]


def _read_log(path: Path) -> Log:
    # The observer may be mid-line: only complete lines are read.
    text = path.read_text() if path.exists() else ""
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def _lost(flags: Log) -> list[tuple[str, str, str]]:
    return [(f["flag"], f["code"], f["ts"]) for f in flags if f.get("flag") == F.LOST]


async def _swallowed_hook(tmp_path: Path, deadline: float,
                          stop_when: Callable[[Log], bool]) -> tuple[Path, Log]:
    """A dashboard connects through the proxy, a hook POST is swallowed by the server and the
    dashboard leaves at once, so the capture's traffic ends right after the POST; the proxy is
    stopped (SIGTERM) once its log satisfies ``stop_when``. The capture and the live log."""
    srv = AppServer(drop_hooks=True)
    await srv.start()
    port = free_port()
    log, capture = tmp_path / "live.jsonl", tmp_path / "capture.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "proxy", "--listen", f"127.0.0.1:{port}",
        "--upstream", srv.url, "--log", str(log), "--capture", str(capture),
        "--deadline", str(deadline), stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(proc.stderr.readline(), 20)
        assert b"listening on" in line, line
        url = f"http://127.0.0.1:{port}"
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(url, auth={"token": TOKEN}, transports=["websocket"],
                             wait_timeout=10)
        async with aiohttp.ClientSession() as http, http.post(
                url + "/api/events", json={"type": "hook", "data": {"x": 3}}) as resp:
            assert resp.status == 200
        await client.disconnect()

        async def until_stop() -> None:
            # The log is written by the observer process on its 100 ms tick: poll the file.
            while not stop_when(_read_log(log)):
                await asyncio.sleep(0.05)

        await asyncio.wait_for(until_stop(), 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        await srv.stop()
    live = _read_log(log)
    assert live[-1]["event"] == model.SUMMARY
    return capture, live


def _report(capture: Path, deadline: float) -> dict[str, Any]:
    result = sniffer("report", "--json", "--deadline", str(deadline), str(capture))
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _traffic_end(capture: Path) -> float:
    """The time of the capture's last tap event (its last traffic)."""
    lines = [json.loads(line) for line in capture.read_text().splitlines()[1:]]
    return max(line["ts"] for line in lines if line["t"] != "record")


async def test_report_flags_lost_as_the_live_proxy_did_after_the_traffic_ended(
        tmp_path: Path) -> None:
    """The traffic ends before the deadline but the proxy runs past it and flags the POST
    lost: the report, judging at the capture's end (the live summary), gives the same flag."""
    deadline = 0.5
    capture, live = await _swallowed_hook(
        tmp_path, deadline, lambda log: bool(_lost([r for r in log if r["event"] == model.FLAG])))
    live_lost = _lost([r for r in live if r["event"] == model.FLAG])
    assert len(live_lost) == 1
    # The case at stake: nothing in the traffic itself reaches the deadline.
    assert _traffic_end(capture) < parse_iso(live_lost[0][2])
    report = _report(capture, deadline)
    assert _lost(report["flags"]) == live_lost
    expectations = report["summary"]["expectations"]
    assert expectations["lost"] == 1 and expectations["open_at_exit"] == 0
    assert report["not_judged"] == []


async def test_a_capture_ending_before_the_deadline_lists_the_event_as_not_judged(
        tmp_path: Path) -> None:
    """The proxy is stopped once the swallowed POST's answer is logged, long before its
    deadline: neither the live proxy nor the report calls it lost; the report lists it as not
    judged, with its sender and how long it had waited of its deadline."""
    deadline = 30.0
    capture, live = await _swallowed_hook(
        tmp_path, deadline,
        lambda log: any(r["event"] == model.HTTP and r.get("path") == "/api/events" for r in log))
    assert _lost([r for r in live if r["event"] == model.FLAG]) == []
    assert live[-1]["expectations"]["open_at_exit"] == 1
    report = _report(capture, deadline)
    assert _lost(report["flags"]) == []
    assert report["summary"]["expectations"]["lost"] == 0
    [unjudged] = report["not_judged"]
    post = next(r for r in live if r["event"] == model.HTTP_REQUEST and r["path"] == "/api/events")
    assert unjudged["what"] == "POST /api/events" and unjudged["source"] == "http"
    assert unjudged["from"].startswith(post["peer"])
    assert unjudged["deadline_s"] == deadline
    assert 0 < unjudged["waited_s"] < deadline
    text = sniffer("report", "--deadline", str(deadline), str(capture)).stdout
    assert "not judged, the capture ends before their deadline: 1" in text
    assert f"POST /api/events from {unjudged['from']}: waited {unjudged['waited_s']:g} s of " \
           f"{deadline:g} s" in text
