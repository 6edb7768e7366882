"""Reporting: each run in a line, and the medians, per-pair ratios and verdicts as a table."""

from __future__ import annotations

import functools
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sio_sniffer.bench.workloads import METRICS_TARGET, Run, Workload

# Targets from the project's performance issue, checked on every table row that has one.
TARGET_BURST_WS = 0.7
TARGET_BURST_POLLING = 0.8
TARGET_PACED_ADDED_P99_MS = 2.0
TARGET_FANOUT_RSS_MB = 150.0
TARGET_SOAK_GROWTH = 0.10
TARGET_VS_MITMPROXY = 10.0
# `--metrics-ab`: the burst ratio with --metrics on may fall this much below it off, at most
TARGET_METRICS_COST = 0.05


def describe_run(work: Workload, run: Run) -> str:
    r = run.result
    parts = [f"{r['deliveries']}/{r['expected']} delivered in {r['elapsed_ms'] / 1000:.2f} s"]
    if work.mode in ("burst", "soak"):
        parts.append(f"{r['per_s']:,.0f} deliveries/s")
    lat = r.get("latency_ms")
    if lat and lat.get("p50") is not None:
        parts.append(f"p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms")
    if work.mode == "fanout":
        parts.append(f"connected in {run.connect_ms / 1000:.2f} s")
    if run.catch_up_s:
        parts.append(f"caught up {run.catch_up_s:.1f} s later")
    return ", ".join(parts)


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _pairs(runs: list[Run], target: str, metric: Callable[[Run], float | None],
           combine: Callable[[float, float], float]) -> list[float]:
    """Per repetition: ``combine(target's value, direct's value)``."""
    by_rep: dict[int, dict[str, float]] = {}
    for run in runs:
        value = metric(run)
        if value is not None:
            by_rep.setdefault(run.rep, {})[run.target] = value
    return [combine(v[target], v["direct"]) for v in by_rep.values()
            if target in v and "direct" in v]


def _rep_pairs(runs: list[Run], target: str,
               metric: Callable[[Run], float | None]) -> list[tuple[int, float]]:
    """Per repetition: (rep, target's value / direct's value)."""
    by_rep: dict[int, dict[str, float]] = {}
    for run in runs:
        value = metric(run)
        if value is not None:
            by_rep.setdefault(run.rep, {})[run.target] = value
    return [(rep, v[target] / v["direct"]) for rep, v in sorted(by_rep.items())
            if target in v and v.get("direct")]


@dataclass
class Row:
    workload: str
    metric: str
    values: dict[str, str]  # target -> median as text
    compare: dict[str, str]  # target -> ratio or added, with spread
    target: str = ""
    verdict: str = ""


def figure(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def _spread(values: list[float], digits: int, sign: bool = False) -> str:
    if not values:
        return "-"
    med, lo, hi = statistics.median(values), min(values), max(values)
    fmt = f"{{:{'+' if sign else ''}.{digits}f}}"
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(lo)}..{fmt.format(hi)})"


def summarize(works: list[Workload], runs: list[Run],
              sniffer_info: dict[str, dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for work in works:
        mine = [r for r in runs if r.workload == work.name]
        others = [t for t in work.targets if t != "direct"]

        def med(target: str, metric: Callable[[Run], float | None],
                runs_: list[Run] = mine) -> float | None:
            vals = [v for r in runs_ if r.target == target
                    if (v := metric(r)) is not None]
            return _median(vals)

        def complete(r: Run) -> bool:
            return bool(r.result.get("complete"))

        if work.mode == "burst":
            def rate(r: Run) -> float | None:
                return float(r.result["per_s"]) if complete(r) else None

            values = {t: figure(med(t, rate)) for t in work.targets}
            ratios = {t: _pairs(mine, t, rate, lambda a, b: a / b) for t in others}
            goal = TARGET_BURST_WS if work.name == "burst-ws" else TARGET_BURST_POLLING
            sniffer_ratio = ratios.get("sniffer", [])
            incomplete = sum(1 for r in mine if not complete(r))
            verdict = ("ok" if sniffer_ratio and statistics.median(sniffer_ratio) >= goal
                       else "MISSED")
            if incomplete:
                verdict += f" ({incomplete} runs incomplete)"
            rows.append(Row(work.name, "deliveries/s", values,
                            {t: _spread(v, 2) for t, v in ratios.items()}, f">= {goal} x",
                            verdict))
            if "mitmproxy" in ratios:
                vs = _pairs(mine, "sniffer", rate, lambda a, b: a / b)
                mitm = _pairs(mine, "mitmproxy", rate, lambda a, b: a / b)
                times = [s / m for s, m in zip(vs, mitm, strict=False) if m]
                rows.append(Row(work.name, "sniffer / mitmproxy", {}, {"sniffer": _spread(
                    times, 1)}, f">= {TARGET_VS_MITMPROXY:.0f} x", "ok" if times and
                    statistics.median(times) >= TARGET_VS_MITMPROXY else "MISSED"))
            if METRICS_TARGET in ratios:
                # per repetition, both ratios against the same direct run: on - off
                off = dict(_rep_pairs(mine, "sniffer", rate))
                on = dict(_rep_pairs(mine, METRICS_TARGET, rate))
                diff = [on[rep] - off[rep] for rep in on if rep in off]
                rows.append(Row(work.name, "ratio --metrics on - off", {}, {
                    METRICS_TARGET: _spread(diff, 3, sign=True)},
                    f">= -{TARGET_METRICS_COST:g}",
                    "ok" if diff and statistics.median(diff) >= -TARGET_METRICS_COST
                    else "MISSED"))
            catch = [r.catch_up_s for r in mine if r.target == "sniffer" and r.catch_up_s]
            if catch:
                rows.append(Row(work.name, "log catch-up s", {"sniffer": figure(
                    statistics.median(catch), 1)}, {}))
        elif work.mode == "paced":
            for pct in ("p50", "p99"):
                lat = functools.partial(_latency, pct=pct, whole=True)

                added = {t: _pairs(mine, t, lat, lambda a, b: a - b) for t in others}
                target = verdict = ""
                if pct == "p99":
                    target = f"<= +{TARGET_PACED_ADDED_P99_MS:g} ms"
                    snif = added.get("sniffer", [])
                    verdict = ("ok" if snif and statistics.median(snif)
                               <= TARGET_PACED_ADDED_P99_MS else "MISSED")
                rows.append(Row(work.name, f"latency {pct} ms",
                                {t: figure(med(t, lat), 2) for t in work.targets},
                                {t: _spread(v, 2, sign=True) + " ms" for t, v in added.items()},
                                target, verdict))
        elif work.mode == "fanout":
            rows.append(Row(work.name, f"connect {work.dashboards} clients s",
                            {t: figure(med(t, lambda r: r.connect_ms / 1000), 2)
                             for t in work.targets}, {}))
            delivered = {t: " ".join(f"{r.result['deliveries']}/{r.result['expected']}"
                                     for r in mine if r.target == t) for t in work.targets}
            all_in = all(complete(r) for r in mine)
            rows.append(Row(work.name, "delivered", delivered, {}, "all",
                            "ok" if all_in else "MISSED"))
            for pct in ("p50", "p99"):
                rows.append(Row(work.name, f"delivery {pct} ms", {
                    t: figure(med(t, functools.partial(_latency, pct=pct)), 1)
                    for t in work.targets}, {}))
            hwm = sniffer_info.get(work.name, {}).get("VmHWM")
            rows.append(Row(work.name, "sniffer peak RSS MB", {"sniffer": figure(hwm, 1)}, {},
                            f"<= {TARGET_FANOUT_RSS_MB:g}",
                            "ok" if hwm is not None and hwm <= TARGET_FANOUT_RSS_MB
                            else "MISSED"))
        elif work.mode == "soak":
            for run in mine:
                samples = run.rss
                if not samples:
                    continue
                start = samples[0].get("VmRSS")
                middle = _closest(samples, run.result["sent"] / 2)
                end = samples[-1].get("VmRSS")
                growth = (end - middle) / middle if end is not None and middle else None
                rows.append(Row(work.name, "sniffer RSS MB start/middle/end",
                                {"sniffer": f"{figure(start, 1)} / {figure(middle, 1)} / "
                                            f"{figure(end, 1)}"},
                                {"sniffer": f"{growth:+.1%} end vs middle"
                                 if growth is not None else "-"},
                                f"<= +{TARGET_SOAK_GROWTH:.0%}",
                                "ok" if growth is not None and growth <= TARGET_SOAK_GROWTH
                                else "MISSED"))
                rows.append(Row(work.name, "deliveries/s", {"sniffer": figure(
                    float(run.result["per_s"]))}, {}, "all delivered",
                    "ok" if complete(run) else "MISSED"))
                if run.catch_up_s is not None:
                    rows.append(Row(work.name, "log catch-up s", {"sniffer": figure(
                        run.catch_up_s, 1)}, {}))
    return rows


def _latency(run: Run, pct: str, whole: bool = False) -> float | None:
    """A latency percentile of a run (only of a run that completed when ``whole``)."""
    value = (run.result.get("latency_ms") or {}).get(pct)
    if value is None or (whole and not run.result.get("complete")):
        return None
    return float(value)


def _closest(samples: list[dict[str, Any]], done: float) -> float | None:
    best = min(samples, key=lambda s: abs(float(s.get("done", 0)) - done))
    value = best.get("VmRSS")
    return float(value) if value is not None else None


COLUMNS = ("direct", "sniffer", METRICS_TARGET, "mitmproxy")


def render_table(rows: list[Row], markdown: bool) -> str:
    targets = [c for c in COLUMNS if any(c in r.values or c in r.compare for r in rows)]
    compared = [t for t in targets if t != "direct"]
    header = ["workload", "metric", *targets,
              *(f"{t} vs direct" for t in compared), "target", ""]
    body = [[r.workload, r.metric, *(r.values.get(t, "") for t in targets),
             *(r.compare.get(t, "") for t in compared), r.target, r.verdict] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     .rstrip() for row in [header, *body])
