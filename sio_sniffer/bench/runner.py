"""The bench itself: each workload A/B, direct and through the sniffer, then the table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from sio_sniffer.bench.measure import cpu_seconds, dropped_copies, proc_status, wait_idle
from sio_sniffer.bench.processes import (
    Child,
    Peers,
    find_peers,
    run_clients,
    scrape,
    start_mitmproxy,
    start_server,
    start_sniffer,
)
from sio_sniffer.bench.table import describe_run, figure, render_table, summarize
from sio_sniffer.bench.workloads import (
    METRICS_TARGET,
    BenchConfig,
    Run,
    Workload,
    build_workloads,
)

# `--metrics-ab`: how often the metrics sniffer is scraped during a run (Prometheus' default is
# every 15 s to a minute; every second makes the scrapes' own cost show, if it is one)
SCRAPE_INTERVAL = 1.0
SNIFFERS = {"sniffer": "", METRICS_TARGET: ".metrics"}  # target -> its log's infix


def scraped_events(text: str) -> float:
    """The Socket.IO events a /metrics page counted (all directions, names)."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "sio_sniffer_events_total")


class Bench:
    def __init__(self, args: BenchConfig, peers: Peers,
                 say: Callable[[str], None]) -> None:
        self.args = args
        self.peers = peers
        self.say = say
        self.runs: list[Run] = []
        self.sniffer_info: dict[str, dict[str, Any]] = {}

    async def workload(self, work: Workload, logdir: Path) -> None:
        server, upstream = await start_server(self.peers)
        proxies: dict[str, Child] = {}
        urls = {"direct": upstream}
        logs = {t: logdir / f"{work.name}{infix}.log" for t, infix in SNIFFERS.items()}
        try:
            for target in SNIFFERS:
                if target in work.targets:
                    proxies[target], urls[target] = await start_sniffer(
                        upstream, logs[target], self.args.sniffer_loop, self.args.sniffer_args,
                        metrics=target == METRICS_TARGET)
            if "mitmproxy" in work.targets:
                proxies["mitmproxy"], urls["mitmproxy"] = await start_mitmproxy(upstream)
            for rep in range(work.reps):
                # rotate the order every repetition, so drift on the machine hits each side
                order = [work.targets[(rep + i) % len(work.targets)]
                         for i in range(len(work.targets))]
                for target in order:
                    await self.one(work, rep, target, urls[target], proxies.get(target))
            for target in SNIFFERS:
                sniffer = proxies.get(target)
                if sniffer is None:
                    continue
                info: dict[str, Any] = dict(proc_status(sniffer.pid))
                info["cpu_s"] = cpu_seconds(sniffer.pid)
                if sniffer.metrics_url is not None:
                    # the metrics counted what went through: the sink really ran
                    info["scraped_events"] = scraped_events(await scrape(sniffer.metrics_url))
                await sniffer.stop()
                log = logs[target]
                info["log_mb"] = log.stat().st_size / 1e6 if log.exists() else 0.0
                info["dropped_bytes"] = dropped_copies(sniffer.stderr)
                if sniffer.proc.returncode not in (0, None):
                    info["exit"] = sniffer.proc.returncode
                    info["stderr"] = sniffer.stderr[-10:]
                self.sniffer_info[work.name if target == "sniffer"
                                  else f"{work.name} ({target})"] = info
        finally:
            for child in proxies.values():
                await child.stop()
            await server.stop()
            if not self.args.keep_logs:
                for log in logs.values():
                    with contextlib.suppress(OSError):
                        log.unlink()

    async def one(self, work: Workload, rep: int, target: str, url: str,
                  proxy: Child | None) -> None:
        rss: list[dict[str, Any]] = []

        def sample(event: str, msg: dict[str, Any]) -> None:
            if proxy is not None:
                rss.append({"at": event, "done": msg.get("done", 0), **proc_status(proxy.pid)})

        scraper = None
        scrapes = [0]
        if proxy is not None and proxy.metrics_url is not None:
            # once before the clients start (so even a run shorter than the interval has one),
            # then along the run
            await scrape(proxy.metrics_url)
            scrapes[0] += 1
            scraper = asyncio.get_running_loop().create_task(
                self._scrape_along(proxy.metrics_url, scrapes))
        try:
            result, connect_ms = await run_clients(self.peers, work, url, self.args.stall,
                                                   sample)
        finally:
            if scraper is not None:
                scraper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scraper
        sample("end", {"done": result.get("deliveries", 0) // max(1, work.dashboards)})
        catch_up = await wait_idle(proxy.pid) if proxy is not None else None
        run = Run(work.name, target, rep, result, connect_ms, rss, catch_up,
                  scrapes[0] if scraper is not None else None)
        self.runs.append(run)
        self.say(f"{work.name} #{rep + 1} {target:15} {describe_run(work, run)}"
                 + (f", scraped {run.scrapes}x" if run.scrapes is not None else ""))

    @staticmethod
    async def _scrape_along(url: str, done: list[int]) -> None:
        """Scrape ``url`` every SCRAPE_INTERVAL until cancelled, counting the scrapes."""
        while True:
            await asyncio.sleep(SCRAPE_INTERVAL)
            await scrape(url)
            done[0] += 1


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "load": os.getloadavg()
            if hasattr(os, "getloadavg") else None}


def _raise_fd_limit() -> None:
    """A thousand clients through a proxy need a few thousand descriptors (children inherit)."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY
                                                        else 65536, hard))


async def bench(args: BenchConfig, out: IO[str], err: IO[str]) -> int:
    def say(message: str) -> None:
        if not args.quiet:
            print(f"bench: {message}", file=err, flush=True)

    peers = find_peers(args.peers, args.node_modules, say)
    if peers.note:
        print(f"bench: {peers.note}", file=err, flush=True)
    _raise_fd_limit()
    works = build_workloads(args)
    runner = Bench(args, peers, say)
    with tempfile.TemporaryDirectory(prefix="sio-sniffer-bench-") as tmp:
        logdir = Path(args.keep_logs) if args.keep_logs else Path(tmp)
        logdir.mkdir(parents=True, exist_ok=True)
        for work in works:
            say(f"{work.name}: {work.dashboards} dashboards, {work.events:,} events, "
                f"{work.reps} x {'/'.join(work.targets)}")
            await runner.workload(work, logdir)
    rows = summarize(works, runner.runs, runner.sniffer_info)
    command = args.command_line
    if args.json:
        doc = {
            "command": command.strip(), "peers": {"kind": peers.kind, "version": peers.version,
                                                  "note": peers.note or None},
            "machine": machine(), "sniffer": {"loop": args.sniffer_loop,
                                              "args": args.sniffer_args},
            "workloads": {w.name: {
                "settings": w.client_opts("", args.stall) | {"reps": w.reps,
                                                             "targets": list(w.targets)},
                "runs": [{"target": r.target, "rep": r.rep, "connect_ms": r.connect_ms,
                          "catch_up_s": r.catch_up_s, "rss_mb": r.rss, **r.result,
                          **({"scrapes": r.scrapes} if r.scrapes is not None else {})}
                         for r in runner.runs if r.workload == w.name],
                "sniffer_process": runner.sniffer_info.get(w.name),
                **({"sniffer_metrics_process": runner.sniffer_info.get(
                    f"{w.name} ({METRICS_TARGET})")} if METRICS_TARGET in w.targets else {}),
            } for w in works},
            "table": [{"workload": r.workload, "metric": r.metric, "values": r.values,
                       "compare": r.compare, "target": r.target, "verdict": r.verdict}
                      for r in rows],
        }
        out.write(json.dumps(doc, indent=2) + "\n")
        return 0
    info = machine()
    out.write(f"{command.strip()}\npeers: {peers.describe()}; sniffer: python -m sio_sniffer "
              f"proxy (decoding, analysis, JSON log to a file; {args.sniffer_loop} loop); "
              f"{info['cpus']} CPUs, Python {info['python']}\n")
    if args.metrics_ab:
        out.write(f"{METRICS_TARGET}: the same sniffer with --metrics 127.0.0.1:0, its /metrics "
                  f"scraped every {SCRAPE_INTERVAL:g} s during its runs\n")
    if peers.note:
        out.write(f"note: {peers.note}\n")
    out.write(render_table(rows, args.markdown) + "\n")
    for name, snif in runner.sniffer_info.items():
        dropped = snif.get("dropped_bytes")
        out.write(f"{name}: sniffer process peak RSS {figure(snif.get('VmHWM'), 1)} MB, "
                  f"CPU {figure(snif.get('cpu_s'), 1)} s, log {figure(snif.get('log_mb'), 1)} MB"
                  + (f", {dropped / 1e6:,.1f} MB of copies dropped unanalysed (the observer "
                     "fell behind past --observer-buffer)" if dropped else "") + "\n")
    return 0
