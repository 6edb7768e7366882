"""`examples/grafana-dashboard.json` and `examples/prometheus-alerts.yml` against a live scrape:
every metric name their PromQL uses is one `sio-sniffer proxy --metrics` exports, and every label
they group or match by is one those metrics carry, so the examples cannot drift from the code."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import socketio
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.paths import ROOT
from tests.rigs import TIMEOUT, log_lines, stop_proxy, until
from tests.sinks.test_metrics import _py_setup, py_dashboard

DASHBOARD = ROOT / "examples" / "grafana-dashboard.json"
ALERTS = ROOT / "examples" / "prometheus-alerts.yml"

# PromQL words that are neither metrics nor functions (these are followed by "(" anyway)
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or",
            "unless", "offset", "inf", "nan"}
# Labels Prometheus adds to every series it scrapes
TARGET_LABELS = {"instance", "job"}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHERS = re.compile(r"\{([^}]*)\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_IDENT = re.compile(r"(?<![\w:$.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")


def promql_names(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and the label names (grouping clauses and matchers) of ``expr``."""
    text = _STRING.sub('""', expr)
    labels: set[str] = set()
    for match in _GROUPING.finditer(text):
        labels |= {x.strip() for x in match.group(1).split(",") if x.strip()}
    text = _GROUPING.sub(" ", text)
    for match in _MATCHERS.finditer(text):
        labels |= set(_MATCHER_LABEL.findall(match.group(1)))
    text = _RANGE.sub(" ", _MATCHERS.sub(" ", text))
    names = {n for n in _IDENT.findall(text) if n.lower() not in KEYWORDS}
    return names, labels


def test_promql_names_skips_functions_labels_and_strings() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, instance) (rate(a_bucket{x=~"$i", y!="b{c}"}'
            '[5m] offset 1h))) > on (instance) group_left bool b_total and c:rec')
    assert promql_names(expr) == ({"a_bucket", "b_total", "c:rec"},
                                  {"le", "instance", "x", "y"})


def dashboard_exprs(doc: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    for var in doc["templating"]["list"]:
        query = var["query"]
        found = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query["query"])
        assert found, query  # Grafana's own function: the metric is its first argument
        exprs.append(f"{found.group(1)}{{{found.group(2)}!=\"\"}}")
    return exprs


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(ALERTS.read_text())
    (group,) = doc["groups"]
    rules: list[dict[str, Any]] = group["rules"]
    return rules


def test_dashboard_is_an_importable_grafana_dashboard() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert doc["schemaVersion"] == 39
    assert [(i["name"], i["type"], i["pluginId"]) for i in doc["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")]
    ds = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    assert doc["panels"] and len({p["id"] for p in doc["panels"]}) == len(doc["panels"])
    for panel in doc["panels"]:
        assert panel["datasource"] == ds, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["datasource"] == ds and t["expr"] for t in panel["targets"])
    assert all(v["datasource"] == ds for v in doc["templating"]["list"])
    titles = {p["title"] for p in doc["panels"]}
    assert {"Lost events by cause", "Relay latency", "Connected clients by role",
            "Observer lag", "Decode errors", "Bytes relayed", "Flags by kind"} <= titles


def test_alerts_are_a_prometheus_rule_group() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    assert {"SioSnifferEventsLost", "SioSnifferObserverLagHigh", "SioSnifferUpstreamDown"} \
        <= set(rules)
    for rule in rules.values():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    lost = rules["SioSnifferEventsLost"]
    assert "increase(sio_sniffer_lost_total[5m])" in lost["expr"]
    assert lost["expr"].endswith(") > 0")
    assert "code" in promql_names(lost["expr"])[1]
    assert "$labels.code" in lost["annotations"]["summary"]
    assert "$labels.code" in lost["annotations"]["description"]


def exported(text: str) -> dict[str, set[str]]:
    """Every series name a scrape can be queried by, with the labels its samples carry."""
    names: dict[str, set[str]] = {}
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count",
                                                                 "_created"),
                "summary": ("_sum", "_count", "_created"), "info": ("_info",)}
    for family in text_string_to_metric_families(text):
        # a family without samples yet (no lost event so far) still has its name in the scrape
        names.setdefault(family.name, set())
        for suffix in suffixes.get(family.type, ()):
            names.setdefault(family.name + suffix, set())
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


async def test_every_metric_in_the_examples_is_exported(tmp_path: Path,
                                                        py_server_factory: Any) -> None:
    """A live `sio-sniffer proxy --metrics 127.0.0.1:0` with a dashboard, a client asking for
    acks and a hook POST the server drops (a lost event) is scraped; each name the dashboard's
    and the alerts' PromQL use is in it, and the labels they group by are its samples' labels."""
    upstream = (await py_server_factory(_py_setup)).url
    log = tmp_path / "log.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "proxy", "--listen", "127.0.0.1:0", "--upstream",
        upstream, "--log", str(log), "--metrics", "127.0.0.1:0", "--deadline", "0.5",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        # both ports were picked by the system: the proxy says which, listener first
        assert proc.stderr is not None
        first, second = [(await asyncio.wait_for(proc.stderr.readline(), 20)).decode()
                         for _ in range(2)]
        listening = re.search(r"listening on 127\.0\.0\.1:(\d+)", first)
        served = re.search(r"metrics at (http://127\.0\.0\.1:\d+/metrics)", second)
        assert listening and served, (first, second)
        url, metrics_url = f"http://127.0.0.1:{listening.group(1)}", served.group(1)
        async with py_dashboard(url) as seen:
            asker = socketio.AsyncClient(reconnection=False)
            await asker.connect(url, transports=["websocket"])
            try:
                assert await asker.call("echo", {"n": 1}, timeout=TIMEOUT) == {"n": 1}
                await asker.emit("relay", {"n": 2})
                await asyncio.wait_for(seen.get(), TIMEOUT)
                async with aiohttp.ClientSession() as http:
                    for body in ({"n": 1}, {"n": 2, "drop": True}):
                        async with http.post(f"{url}/api/events", json=body) as resp:
                            assert resp.status == 204
                await until(lambda: any(r.get("flag") == "lost" for r in log_lines(log)))
                async with aiohttp.ClientSession() as http, http.get(metrics_url) as resp:
                    assert resp.status == 200
                    text = await resp.text()
            finally:
                await asker.disconnect()
    finally:
        assert await stop_proxy(proc) == 0
    names = exported(text)
    assert names["sio_sniffer_lost_total"]  # the traffic made samples, not only the family
    exprs = [*dashboard_exprs(json.loads(DASHBOARD.read_text())),
             *(r["expr"] for r in alert_rules())]
    used: set[str] = set()
    for expr in exprs:
        metrics, labels = promql_names(expr)
        assert metrics, expr
        used |= metrics
        missing = sorted(m for m in metrics if m not in names)
        assert not missing, f"{expr!r} uses {missing}, which /metrics does not export"
        if all(names[m] for m in metrics):
            carried = set().union(*(names[m] for m in metrics)) | TARGET_LABELS
            assert labels <= carried, f"{expr!r} groups by {sorted(labels - carried)}"
    assert {"sio_sniffer_lost_total", "sio_sniffer_relay_latency_seconds_bucket",
            "sio_sniffer_ack_latency_seconds_bucket", "sio_sniffer_clients",
            "sio_sniffer_observer_lag_seconds", "sio_sniffer_decode_errors_total",
            "sio_sniffer_relayed_bytes_total", "sio_sniffer_flags_total",
            "sio_sniffer_upstream_up"} <= used
