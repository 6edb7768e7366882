"""`sio-sniffer bench`: the same workload direct and through the sniffer, A/B in one run.

A sniffer that slows the app changes the bug it is meant to find, so the figure that matters is
the ratio to no sniffer at all, measured on the same machine in the same minute. Every workload
runs a Socket.IO server and its clients as separate processes (Node ``socket.io`` and
``socket.io-client`` when ``node`` exists, installed into a cache on first use; python-socketio
otherwise), and the sniffer as its own process too (``python -m sio_sniffer proxy``, with full
decoding, analysis and the JSON log written to a file, the way users run it), so neither the
clients' load nor the bench itself shares the sniffer's event loop. Runs alternate direct and
through the sniffer (and mitmproxy, when asked), and the table gives medians and per-pair ratios
with their spread, because these machines are noisy.

Run as ``python -m sio_sniffer.bench server|clients JSON`` this module is the python-socketio
peer used when Node is missing; it speaks the same JSON lines as ``bench_node/*.js``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sio_sniffer.testing import free_port

WORKLOADS = ("burst-ws", "burst-polling", "paced", "fanout", "soak")
DEFAULT_WORKLOADS = ("burst-ws", "burst-polling", "paced", "fanout", "soak")
NODE_PACKAGES = ("socket.io@4", "socket.io-client@4")
NODE_MODULES_ENV = "SIO_SNIFFER_BENCH_NODE_MODULES"
BENCH_NODE = Path(__file__).resolve().parent / "node"
# Targets from the project's performance issue, checked on every table row that has one.
TARGET_BURST_WS = 0.7
TARGET_BURST_POLLING = 0.8
TARGET_PACED_ADDED_P99_MS = 2.0
TARGET_FANOUT_RSS_MB = 150.0
TARGET_SOAK_GROWTH = 0.10
TARGET_VS_MITMPROXY = 10.0
# Sustained load for the soak: twice the relay's copies per event (in and out) at 10,000 events/s
# is what the observer process works off on these 2-core machines while the peers and the relay
# take their share; faster, the copies queue up in the relay and the soak measures that queue.
DEFAULT_SOAK_RATE = 10_000.0
# The sniffer is "caught up" once it uses less than this share of a core (it decodes after
# forwarding, so a burst can leave it busy after the clients are done).
IDLE_CPU_SHARE = 0.05


class BenchError(Exception):
    """The bench cannot run as asked; the message says why and what to do."""


@dataclass
class Peers:
    """How to start the server and the client peers."""

    kind: str  # "node" or "python"
    node: str | None = None
    node_modules: Path | None = None
    note: str = ""
    version: str = ""

    def server_argv(self, opts: dict[str, Any]) -> list[str]:
        if self.kind == "node":
            assert self.node is not None
            return [self.node, str(BENCH_NODE / "server.js"), json.dumps(opts)]
        return [sys.executable, "-m", "sio_sniffer.bench.peer", "server", json.dumps(opts)]

    def clients_argv(self, opts: dict[str, Any]) -> list[str]:
        if self.kind == "node":
            assert self.node is not None
            return [self.node, str(BENCH_NODE / "clients.js"), json.dumps(opts)]
        return [sys.executable, "-m", "sio_sniffer.bench.peer", "clients", json.dumps(opts)]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.node_modules is not None:
            env["NODE_PATH"] = str(self.node_modules)
        return env

    def describe(self) -> str:
        if self.kind == "node":
            return f"Node socket.io {self.version} server and socket.io-client"
        return f"python-socketio {self.version} server and clients"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sio-sniffer" / "node"


def _has_node_peers(modules: Path) -> bool:
    return all((modules / name / "package.json").is_file()
               for name in ("socket.io", "socket.io-client"))


def _install_node_peers(target: Path, report: Callable[[str], None]) -> str | None:
    """``npm install`` the peers into ``target``; None on success, else why it failed."""
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed"
    target.mkdir(parents=True, exist_ok=True)
    report(f"installing {' '.join(NODE_PACKAGES)} into {target} (first use only)")
    import subprocess

    try:
        done = subprocess.run(
            [npm, "install", "--prefix", str(target), "--no-audit", "--no-fund",
             "--loglevel=error", *NODE_PACKAGES],
            capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"npm install failed: {exc}"
    if done.returncode != 0:
        return f"npm install failed: {done.stderr.strip()[-500:]}"
    return None


def find_peers(choice: str, node_modules: str | None,
               report: Callable[[str], None]) -> Peers:
    """Node peers if possible (or required), else python-socketio peers with a note."""
    if choice == "python":
        return Peers("python")
    node = shutil.which("node")
    problem: str
    if node is None:
        problem = "node is not installed"
    else:
        given = node_modules or os.environ.get(NODE_MODULES_ENV)
        if given:
            modules = Path(given).resolve()
            if not _has_node_peers(modules):
                raise BenchError(f"{modules} does not hold socket.io and socket.io-client "
                                 f"(install them with `npm install {' '.join(NODE_PACKAGES)}`)")
            return Peers("node", node, modules)
        modules = cache_dir() / "node_modules"
        if _has_node_peers(modules):
            return Peers("node", node, modules)
        failure = _install_node_peers(cache_dir(), report)
        if failure is None and _has_node_peers(modules):
            return Peers("node", node, modules)
        problem = failure or "npm did not install the peers"
    if choice == "node":
        raise BenchError(f"Node peers are not available: {problem}")
    return Peers("python", note=f"{problem}: using python-socketio peers, so the figures are "
                                f"bound by the peers' speed more than by the sniffer's")


class Child:
    """A peer, sniffer or mitmproxy process: JSON lines out, stderr kept for error messages."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.stderr: list[str] = []
        self._stderr_task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, name: str, argv: Sequence[str], env: dict[str, str] | None = None,
                    keep_stderr: bool = True) -> Child:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, limit=1 << 20)
        except OSError as exc:
            raise BenchError(f"cannot start the {name}: {exc}") from exc
        child = cls(name, proc)
        if keep_stderr:
            child.read_stderr()
        return child

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read_stderr(self) -> None:
        """Keep draining stderr in the background (a full pipe would block the child)."""
        async def drain() -> None:
            assert self.proc.stderr is not None
            async for raw in self.proc.stderr:
                self.stderr.append(raw.decode("utf-8", "replace").rstrip())
                del self.stderr[:-40]

        self._stderr_task = asyncio.get_running_loop().create_task(drain())

    async def stderr_line(self, timeout: float) -> str | None:
        assert self.proc.stderr is not None
        raw = await asyncio.wait_for(self.proc.stderr.readline(), timeout)
        return raw.decode("utf-8", "replace").rstrip() if raw else None

    async def message(self, timeout: float) -> dict[str, Any]:
        """The next JSON line on stdout."""
        assert self.proc.stdout is not None
        while True:
            try:
                raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
            except asyncio.TimeoutError:
                raise BenchError(f"the {self.name} said nothing for {timeout:.0f} s"
                                 f"{self._tail()}") from None
            if not raw:
                await self.proc.wait()
                raise BenchError(f"the {self.name} exited (code {self.proc.returncode})"
                                 f"{self._tail()}")
            with contextlib.suppress(ValueError):
                value = json.loads(raw)
                if isinstance(value, dict):
                    if value.get("event") == "error":
                        raise BenchError(f"the {self.name} failed: {value.get('message')}"
                                         f"{self._tail()}")
                    return value

    def _tail(self) -> str:
        return (":\n  " + "\n  ".join(self.stderr[-10:])) if self.stderr else ""

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._stderr_task, 5)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux): the sniffer is a relay process and its observer
    child, and both are what the sniffer costs."""
    parents: dict[int, list[int]] = {}
    with contextlib.suppress(OSError):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(parents.get(current, ()))
    return tree


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MB of a process and its descendants, summed (the sum of the peaks
    bounds the peak of the sum); empty where /proc is not there."""
    out: dict[str, float] = {}
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status", encoding="ascii") as f:
                for line in f:
                    key, _, value = line.partition(":")
                    if key in ("VmRSS", "VmHWM"):
                        out[key] = out.get(key, 0.0) + int(value.split()[0]) / 1024
        except (OSError, ValueError, IndexError):
            continue
    return out


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its descendants (Linux), None elsewhere."""
    total = None
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat", encoding="ascii") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total = (total or 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def wait_idle(pid: int, limit: float = 300.0) -> float:
    """Wait until ``pid`` has stopped working off a backlog; how long that took (seconds)."""
    start = time.monotonic()
    last = cpu_seconds(pid)
    if last is None:
        return 0.0
    step = 0.25
    while time.monotonic() - start < limit:
        await asyncio.sleep(step)
        now = cpu_seconds(pid)
        if now is None:
            break
        if now - last < IDLE_CPU_SHARE * step:
            break
        last = now
    return max(0.0, time.monotonic() - start - step)


async def start_server(peers: Peers) -> tuple[Child, str]:
    server = await Child.start("server", peers.server_argv({}), peers.env())
    hello = await server.message(60)
    peers.version = str(hello.get("version", ""))
    return server, f"http://127.0.0.1:{hello['port']}"


_LISTENING = re.compile(r"listening on (?:\[[^\]]+\]|[\d.]+):(\d+)")


def sniffer_argv(upstream: str, log: Path, loop: str, extra: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "sio_sniffer", "proxy", "--listen", "127.0.0.1:0",
            "--upstream", upstream, "--log", str(log), "--loop", loop, *extra]


async def start_sniffer(upstream: str, log: Path, loop: str,
                        extra: Sequence[str]) -> tuple[Child, str]:
    child = await Child.start("sniffer", sniffer_argv(upstream, log, loop, extra),
                              keep_stderr=False)
    lines: list[str] = []
    while True:
        try:
            line = await child.stderr_line(60)
        except asyncio.TimeoutError:
            line = None
        if line is None:
            await child.stop()
            raise BenchError("the sniffer did not start:\n  " + "\n  ".join(lines[-10:]))
        lines.append(line)
        found = _LISTENING.search(line)
        if found:
            child.stderr.extend(lines)
            child.read_stderr()
            return child, f"http://127.0.0.1:{found.group(1)}"


async def start_mitmproxy(upstream: str) -> tuple[Child, str]:
    mitmdump = shutil.which("mitmdump")
    if mitmdump is None:
        raise BenchError("--against mitmproxy needs mitmdump on PATH (pip install mitmproxy)")
    port = free_port()
    child = await Child.start("mitmproxy", [
        mitmdump, "-q", "--mode", f"reverse:{upstream}/", "--listen-host", "127.0.0.1",
        "--listen-port", str(port)])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.proc.returncode is not None:
            break
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return child, f"http://127.0.0.1:{port}"
    await child.stop()
    raise BenchError("mitmdump did not start listening" + child._tail())


@dataclass
class Workload:
    name: str
    mode: str
    transports: list[str]
    dashboards: int
    events: int
    payload: int
    rate: float = 0.0
    interval: float = 1000.0
    window: int = 0
    reps: int = 1
    targets: tuple[str, ...] = ("direct", "sniffer")

    def client_opts(self, url: str, stall_s: float) -> dict[str, Any]:
        return {"url": url, "mode": self.mode, "transports": self.transports,
                "dashboards": self.dashboards, "events": self.events, "payload": self.payload,
                "rate": self.rate, "interval": self.interval, "window": self.window,
                "stallMs": int(stall_s * 1000)}


def build_workloads(args: argparse.Namespace) -> list[Workload]:
    extra = ("mitmproxy",) if args.against == "mitmproxy" else ()
    ab = ("direct", "sniffer", *extra)
    out = []
    for name in args.workload:
        if name == "burst-ws":
            out.append(Workload(name, "burst", ["websocket"], args.dashboards, args.events,
                                args.payload, reps=args.reps, targets=ab))
        elif name == "burst-polling":
            out.append(Workload(name, "burst", ["polling"], args.dashboards, args.events,
                                args.payload, reps=args.reps, targets=ab))
        elif name == "paced":
            out.append(Workload(name, "paced", ["websocket"], args.dashboards,
                                max(1, round(args.rate * args.duration)), args.payload,
                                rate=args.rate, reps=args.paced_reps, targets=ab))
        elif name == "fanout":
            out.append(Workload(name, "fanout", args.fanout_transports, args.clients,
                                args.broadcasts, args.payload, interval=args.interval * 1000,
                                targets=("direct", "sniffer")))
        elif name == "soak":
            out.append(Workload(name, "soak", ["websocket"], args.soak_dashboards,
                                args.soak_events, args.payload, rate=args.soak_rate,
                                window=args.window, targets=("sniffer",)))
    return out


@dataclass
class Run:
    workload: str
    target: str
    rep: int
    result: dict[str, Any]
    connect_ms: float
    rss: list[dict[str, Any]] = field(default_factory=list)
    catch_up_s: float | None = None


Sampler = Callable[[str, dict[str, Any]], None]


async def run_clients(peers: Peers, work: Workload, url: str, stall_s: float,
                      on_message: Sampler) -> tuple[dict[str, Any], float]:
    opts = work.client_opts(url, stall_s)
    clients = await Child.start("clients", peers.clients_argv(opts), peers.env())
    try:
        connected = await clients.message(max(120.0, work.dashboards / 5))
        on_message("connected", connected)
        while True:
            msg = await clients.message(stall_s + 60)
            if msg.get("event") == "result":
                await clients.proc.wait()
                return msg, float(connected.get("ms", 0.0))
            on_message(str(msg.get("event")), msg)
    finally:
        await clients.stop()


class Bench:
    def __init__(self, args: argparse.Namespace, peers: Peers,
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
        log = logdir / f"{work.name}.log"
        try:
            if "sniffer" in work.targets:
                proxies["sniffer"], urls["sniffer"] = await start_sniffer(
                    upstream, log, self.args.sniffer_loop, self.args.sniffer_args)
            if "mitmproxy" in work.targets:
                proxies["mitmproxy"], urls["mitmproxy"] = await start_mitmproxy(upstream)
            for rep in range(work.reps):
                # rotate the order every repetition, so drift on the machine hits each side
                order = [work.targets[(rep + i) % len(work.targets)]
                         for i in range(len(work.targets))]
                for target in order:
                    await self.one(work, rep, target, urls[target], proxies.get(target))
            sniffer = proxies.get("sniffer")
            if sniffer is not None:
                info: dict[str, Any] = dict(proc_status(sniffer.pid))
                info["cpu_s"] = cpu_seconds(sniffer.pid)
                await sniffer.stop()
                info["log_mb"] = log.stat().st_size / 1e6 if log.exists() else 0.0
                info["dropped_bytes"] = dropped_copies(sniffer.stderr)
                if sniffer.proc.returncode not in (0, None):
                    info["exit"] = sniffer.proc.returncode
                    info["stderr"] = sniffer.stderr[-10:]
                self.sniffer_info[work.name] = info
        finally:
            for child in proxies.values():
                await child.stop()
            await server.stop()
            if not self.args.keep_logs:
                with contextlib.suppress(OSError):
                    log.unlink()

    async def one(self, work: Workload, rep: int, target: str, url: str,
                  proxy: Child | None) -> None:
        rss: list[dict[str, Any]] = []

        def sample(event: str, msg: dict[str, Any]) -> None:
            if proxy is not None:
                rss.append({"at": event, "done": msg.get("done", 0), **proc_status(proxy.pid)})

        result, connect_ms = await run_clients(self.peers, work, url, self.args.stall, sample)
        sample("end", {"done": result.get("deliveries", 0) // max(1, work.dashboards)})
        catch_up = await wait_idle(proxy.pid) if proxy is not None else None
        run = Run(work.name, target, rep, result, connect_ms, rss, catch_up)
        self.runs.append(run)
        self.say(f"{work.name} #{rep + 1} {target:9} {describe_run(work, run)}")


_DROPPED = re.compile(r"observer process fell behind: (\d+) bytes")


def dropped_copies(stderr: Sequence[str]) -> int:
    """Bytes of copies the sniffer's relay dropped because its observer fell too far behind
    (it says so on stderr when it ends)."""
    return sum(int(m.group(1)) for line in stderr if (m := _DROPPED.search(line)))


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


@dataclass
class Row:
    workload: str
    metric: str
    values: dict[str, str]  # target -> median as text
    compare: dict[str, str]  # target -> ratio or added, with spread
    target: str = ""
    verdict: str = ""


def _fmt(value: float | None, digits: int = 0) -> str:
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

            values = {t: _fmt(med(t, rate)) for t in work.targets}
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
            catch = [r.catch_up_s for r in mine if r.target == "sniffer" and r.catch_up_s]
            if catch:
                rows.append(Row(work.name, "log catch-up s", {"sniffer": _fmt(
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
                                {t: _fmt(med(t, lat), 2) for t in work.targets},
                                {t: _spread(v, 2, sign=True) + " ms" for t, v in added.items()},
                                target, verdict))
        elif work.mode == "fanout":
            rows.append(Row(work.name, f"connect {work.dashboards} clients s",
                            {t: _fmt(med(t, lambda r: r.connect_ms / 1000), 2)
                             for t in work.targets}, {}))
            delivered = {t: " ".join(f"{r.result['deliveries']}/{r.result['expected']}"
                                     for r in mine if r.target == t) for t in work.targets}
            all_in = all(complete(r) for r in mine)
            rows.append(Row(work.name, "delivered", delivered, {}, "all",
                            "ok" if all_in else "MISSED"))
            for pct in ("p50", "p99"):
                rows.append(Row(work.name, f"delivery {pct} ms", {
                    t: _fmt(med(t, functools.partial(_latency, pct=pct)), 1)
                    for t in work.targets}, {}))
            hwm = sniffer_info.get(work.name, {}).get("VmHWM")
            rows.append(Row(work.name, "sniffer peak RSS MB", {"sniffer": _fmt(hwm, 1)}, {},
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
                                {"sniffer": f"{_fmt(start, 1)} / {_fmt(middle, 1)} / "
                                            f"{_fmt(end, 1)}"},
                                {"sniffer": f"{growth:+.1%} end vs middle"
                                 if growth is not None else "-"},
                                f"<= +{TARGET_SOAK_GROWTH:.0%}",
                                "ok" if growth is not None and growth <= TARGET_SOAK_GROWTH
                                else "MISSED"))
                rows.append(Row(work.name, "deliveries/s", {"sniffer": _fmt(
                    float(run.result["per_s"]))}, {}, "all delivered",
                    "ok" if complete(run) else "MISSED"))
                if run.catch_up_s is not None:
                    rows.append(Row(work.name, "log catch-up s", {"sniffer": _fmt(
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


COLUMNS = ("direct", "sniffer", "mitmproxy")


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


async def bench(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
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
                          "catch_up_s": r.catch_up_s, "rss_mb": r.rss, **r.result}
                         for r in runner.runs if r.workload == w.name],
                "sniffer_process": runner.sniffer_info.get(w.name),
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
    if peers.note:
        out.write(f"note: {peers.note}\n")
    out.write(render_table(rows, args.markdown) + "\n")
    for name, snif in runner.sniffer_info.items():
        dropped = snif.get("dropped_bytes")
        out.write(f"{name}: sniffer process peak RSS {_fmt(snif.get('VmHWM'), 1)} MB, "
                  f"CPU {_fmt(snif.get('cpu_s'), 1)} s, log {_fmt(snif.get('log_mb'), 1)} MB"
                  + (f", {dropped / 1e6:,.1f} MB of copies dropped unanalysed (the observer "
                     "fell behind past --observer-buffer)" if dropped else "") + "\n")
    return 0
