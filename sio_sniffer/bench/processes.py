"""Running the peers, the sniffer and mitmproxy as child processes that speak JSON lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sio_sniffer.bench.workloads import Workload
from sio_sniffer.testing import free_port

NODE_PACKAGES = ("socket.io@4", "socket.io-client@4")
NODE_MODULES_ENV = "SIO_SNIFFER_BENCH_NODE_MODULES"
BENCH_NODE = Path(__file__).resolve().parent / "node"


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
        self.metrics_url: str | None = None  # a sniffer started with --metrics
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


async def start_server(peers: Peers) -> tuple[Child, str]:
    server = await Child.start("server", peers.server_argv({}), peers.env())
    hello = await server.message(60)
    peers.version = str(hello.get("version", ""))
    return server, f"http://127.0.0.1:{hello['port']}"


_LISTENING = re.compile(r"listening on (?:\[[^\]]+\]|[\d.]+):(\d+)")
_METRICS_AT = re.compile(r"metrics at (http://\S+/metrics)")
# `--metrics-ab`: the second sniffer's listener, on a port the system picks
METRICS_ARGS = ("--metrics", "127.0.0.1:0")


def sniffer_argv(upstream: str, log: Path, loop: str, extra: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "sio_sniffer", "proxy", "--listen", "127.0.0.1:0",
            "--upstream", upstream, "--log", str(log), "--loop", loop, *extra]


async def start_sniffer(upstream: str, log: Path, loop: str,
                        extra: Sequence[str], metrics: bool = False) -> tuple[Child, str]:
    """The sniffer and its URL, once it listens. With ``metrics``, it also serves --metrics
    (``METRICS_ARGS``) and is returned once it said where (``Child.metrics_url``)."""
    argv = sniffer_argv(upstream, log, loop, [*extra, *(METRICS_ARGS if metrics else ())])
    child = await Child.start("sniffer", argv, keep_stderr=False)
    lines: list[str] = []
    url: str | None = None
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
            url = f"http://127.0.0.1:{found.group(1)}"
        served = _METRICS_AT.search(line)
        if served:
            child.metrics_url = served.group(1)
        if url is not None and (not metrics or child.metrics_url is not None):
            child.stderr.extend(lines)
            child.read_stderr()
            return child, url


async def scrape(url: str, timeout: float = 10.0) -> str:
    """One GET of a /metrics page, as Prometheus would; its text."""
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http, \
            http.get(url) as resp:
        if resp.status != 200:
            raise BenchError(f"{url} answered {resp.status}")
        return await resp.text()


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
