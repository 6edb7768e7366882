"""`sio-sniffer bench` end to end: tiny versions of each workload with real peers (no timing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.paths import NODE_MODULES, ROOT

TINY = {
    "burst-ws": ["--events", "300", "--dashboards", "2"],
    "burst-polling": ["--events", "300", "--dashboards", "2"],
    "paced": ["--rate", "200", "--duration", "0.5", "--dashboards", "2"],
    "fanout": ["--clients", "30", "--broadcasts", "2", "--interval", "0.2"],
    "soak": ["--soak-events", "3000", "--window", "200"],
}


def bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sio_sniffer", "bench", "--quiet", "--reps", "1",
         "--paced-reps", "1", "--stall", "20", *args],
        capture_output=True, text=True, timeout=240, cwd=ROOT, env=env, check=False)


def bench_json(*args: str) -> dict[str, Any]:
    done = bench("--json", "--node-modules", str(NODE_MODULES), *args)
    assert done.returncode == 0, done.stderr
    doc: dict[str, Any] = json.loads(done.stdout)
    return doc


def check_runs(doc: dict[str, Any], workload: str, targets: list[str]) -> list[dict[str, Any]]:
    work = doc["workloads"][workload]
    runs: list[dict[str, Any]] = work["runs"]
    assert sorted(r["target"] for r in runs) == sorted(targets)
    for run in runs:
        assert run["complete"] is True, run
        assert run["deliveries"] == run["expected"] == \
            work["settings"]["events"] * work["settings"]["dashboards"]
        assert run["out_of_order"] == 0 and run["disconnects"] == 0
    sniffer = work["sniffer_process"]
    # the sniffer really decoded and logged the traffic, in a process of its own
    assert sniffer["log_mb"] > 0 and sniffer["VmHWM"] > 0 and sniffer["cpu_s"] > 0
    # a tiny workload is far below --observer-buffer: every copy was analysed
    assert sniffer["dropped_bytes"] == 0
    return runs


@pytest.mark.parametrize("workload", ["burst-ws", "burst-polling"])
def test_burst_runs_direct_and_through_the_sniffer(workload: str) -> None:
    """A burst is delivered completely both direct and through the sniffer, and the table
    gives the deliveries per second of each with their ratio."""
    doc = bench_json("-w", workload, *TINY[workload])
    assert doc["peers"]["kind"] == "node"
    runs = check_runs(doc, workload, ["direct", "sniffer"])
    assert all(r["per_s"] > 0 for r in runs)
    row = next(r for r in doc["table"] if r["metric"] == "deliveries/s")
    assert set(row["values"]) == {"direct", "sniffer"} and row["compare"]["sniffer"] != "-"


def test_paced_reports_added_latency() -> None:
    """The paced workload measures latency percentiles on both sides and the added p99."""
    doc = bench_json("-w", "paced", *TINY["paced"])
    runs = check_runs(doc, "paced", ["direct", "sniffer"])
    for run in runs:
        assert 0 < run["latency_ms"]["p50"] <= run["latency_ms"]["p99"]
    p99 = next(r for r in doc["table"] if r["metric"] == "latency p99 ms")
    assert p99["compare"]["sniffer"].endswith(" ms") and p99["target"] == "<= +2 ms"


def test_fanout_reports_connect_time_and_sniffer_memory() -> None:
    """Every fanout client connects (polling then WebSocket) and gets every broadcast; the
    sniffer's peak RSS is read from its own process."""
    doc = bench_json("-w", "fanout", *TINY["fanout"])
    runs = check_runs(doc, "fanout", ["direct", "sniffer"])
    assert all(r["connect_ms"] > 0 for r in runs)
    rss = next(r for r in doc["table"] if r["metric"] == "sniffer peak RSS MB")
    assert float(rss["values"]["sniffer"]) > 0


@pytest.mark.parametrize(("peers", "rate"), [("node", None), ("node", "0"), ("python", "2000")])
def test_soak_samples_sniffer_memory_along_the_run(peers: str, rate: str | None) -> None:
    """The soak runs only through the sniffer and samples its RSS at the start, every tenth
    of the events and at the end; paced at --soak-rate (both peers), or unpaced with 0."""
    extra = ["--soak-rate", rate] if rate is not None else []
    doc = bench_json("-w", "soak", "--peers", peers, *TINY["soak"], *extra)
    assert doc["peers"]["kind"] == peers
    (run,) = check_runs(doc, "soak", ["sniffer"])
    samples = run["rss_mb"]
    assert samples[0]["at"] == "connected" and samples[-1]["at"] == "end"
    assert sum(1 for s in samples if s["at"] == "progress") == 10
    assert all(s["VmRSS"] > 0 for s in samples)
    settings = doc["workloads"]["soak"]["settings"]
    assert settings["rate"] == float(rate if rate is not None else 10_000)
    if settings["rate"]:
        # paced: the last event cannot leave before (events - 1) / rate seconds
        assert run["elapsed_ms"] >= (settings["events"] - 1) / settings["rate"] * 1000
    assert any(r["metric"] == "log catch-up s" for r in doc["table"])


def test_text_table_with_python_peers() -> None:
    """Forced python-socketio peers run the same workload and the text table names them."""
    done = bench("-w", "burst-ws", "--events", "100", "--dashboards", "2", "--peers", "python")
    assert done.returncode == 0, done.stderr
    assert "python-socketio" in done.stdout
    line = next(x for x in done.stdout.splitlines() if x.startswith("burst-ws"))
    assert "deliveries/s" in line


def test_bad_node_modules_is_a_clear_error(tmp_path: Path) -> None:
    """A node_modules without the peers is refused with a message saying what to install."""
    done = bench("-w", "burst-ws", "--node-modules", str(tmp_path))
    assert done.returncode == 1
    assert "does not hold socket.io and socket.io-client" in done.stderr


def test_against_mitmproxy_without_mitmdump_is_a_clear_error(tmp_path: Path) -> None:
    """Asking for mitmproxy on a machine without mitmdump says how to get it."""
    node = shutil.which("node")
    assert node is not None
    (tmp_path / "node").symlink_to(node)
    env = {**os.environ, "PATH": str(tmp_path)}
    done = bench("-w", "burst-ws", "--against", "mitmproxy", "--events", "10",
                 "--node-modules", str(NODE_MODULES), env=env)
    assert done.returncode == 1
    assert "needs mitmdump on PATH" in done.stderr


def test_metrics_ab_adds_a_sniffer_with_metrics_and_the_difference() -> None:
    """`--metrics-ab` runs the burst through a second sniffer serving --metrics, scraped during
    its runs, interleaved with direct and the plain sniffer; the table gives its ratio to direct
    and the per-repetition difference of the two ratios (rows only, never timings)."""
    doc = bench_json("-w", "burst-ws", "--metrics-ab", *TINY["burst-ws"])
    work = doc["workloads"]["burst-ws"]
    assert work["settings"]["targets"] == ["direct", "sniffer", "sniffer+metrics"]
    runs = work["runs"]
    assert sorted(r["target"] for r in runs) == ["direct", "sniffer", "sniffer+metrics"]
    assert all(r["complete"] for r in runs)
    (on,) = [r for r in runs if r["target"] == "sniffer+metrics"]
    assert on["scrapes"] >= 1
    assert all("scrapes" not in r for r in runs if r["target"] != "sniffer+metrics")
    # the metrics sink counted the burst's events: the emits in, one copy per dashboard out
    settings = work["settings"]
    assert work["sniffer_metrics_process"]["scraped_events"] >= \
        settings["events"] * (1 + settings["dashboards"])
    assert work["sniffer_process"]["log_mb"] > 0
    rows = {r["metric"]: r for r in doc["table"]}
    burst = rows["deliveries/s"]
    assert set(burst["values"]) == {"direct", "sniffer", "sniffer+metrics"}
    assert burst["compare"]["sniffer+metrics"] != "-"
    diff = rows["ratio --metrics on - off"]
    assert set(diff["compare"]) == {"sniffer+metrics"} and diff["target"] == ">= -0.05"
    float(diff["compare"]["sniffer+metrics"])  # one repetition: the difference itself
