"""The REAL claude-mpm monitor (PyPI claude-mpm 6.x on Python 3.13) and its hooks, for the
integration tests.

The monitor runs in its own Python 3.13 virtual environment (claude-mpm 6.x needs it); `.ci/run`
builds it, and the fixture builds it on first use when it is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import socketio

VENV = Path(os.environ.get("SIO_SNIFFER_MPM_VENV",
                           Path.home() / ".cache" / "sio-sniffer" / "mpm-venv"))
SERVER_SCRIPT = """
import sys, time
from claude_mpm.services.monitor.server import UnifiedMonitorServer
server = UnifiedMonitorServer(host="127.0.0.1", port=int(sys.argv[1]))
print("ready" if server.start() else "failed", flush=True)
sys.stdin.read()  # runs until the test closes our stdin (or kills us)
"""
# Two monitors on one port, as an older server that bound with reuse_port left it: the kernel
# hands each new connection to either.
TWIN_SCRIPT = """
from aiohttp import web
_init = web.TCPSite.__init__
def _reuse_port(self, *args, **kwargs):
    kwargs["reuse_port"] = True
    _init(self, *args, **kwargs)
web.TCPSite.__init__ = _reuse_port
""" + SERVER_SCRIPT
HOOK = {"hook_event_name": "PreToolUse", "session_id": "sess-42", "cwd": "/tmp/project",
        "tool_name": "Bash", "tool_input": {"command": "ls -la"}}


def ensure_venv() -> Path:
    """The claude-mpm venv (Python 3.13), built once and reused."""
    python = VENV / "bin" / "python"
    if not (VENV / "bin" / "claude-hook").exists():
        env = dict(os.environ, PYENV_VERSION="3.13.0")
        subprocess.run(["python3.13", "-m", "venv", str(VENV)], check=True, env=env)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "claude-mpm"], check=True)
    return python


@contextmanager
def twin_monitors(port: int, cwd: Path) -> Iterator[None]:
    """Two real monitors sharing ``port`` until the block ends."""
    procs: list[subprocess.Popen[str]] = []
    try:
        for _ in range(2):
            proc = subprocess.Popen([str(ensure_venv()), "-c", TWIN_SCRIPT, str(port)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True, cwd=cwd)
            procs.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


async def run_cli(*args: str) -> tuple[int, str, str]:
    """``python -m sio_sniffer ARGS`` in a child process: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def _state(task: Path) -> str:
    """A thread's state letter from /proc (after the parenthesised name, which may hold spaces)."""
    try:
        return (task / "stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "T"  # a thread that ended runs nothing


@dataclass
class Monitor:
    """A running monitor: its port, and its process to stall (SIGSTOP) and resume."""

    port: int
    proc: subprocess.Popen[str]

    @contextmanager
    def stalled(self) -> Iterator[None]:
        """The monitor frozen (its whole process, as a stuck event loop would be) until the
        block ends."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        try:
            # kill() returns before the stop takes: on a busy machine the monitor used to answer
            # the POST sent next (a lost flag never came). Wait until every thread is stopped.
            tasks = Path(f"/proc/{self.proc.pid}/task")
            for _ in range(100_000):
                if all(_state(t) in "Tt" for t in tasks.iterdir()):
                    break
                os.sched_yield()
            else:
                raise AssertionError("the monitor did not stop on SIGSTOP")
            yield
        finally:
            os.kill(self.proc.pid, signal.SIGCONT)


@contextlib.asynccontextmanager
async def dashboard(url: str) -> AsyncIterator[asyncio.Queue[tuple[str, Any]]]:
    """A dashboard as claude-mpm's: socket.io on "/", polling then websocket."""
    client = socketio.AsyncClient(reconnection=False)
    got: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    @client.on("*")
    async def any_event(event: str, data: Any = None) -> None:
        await got.put((event, data))

    await client.connect(url, transports=["polling", "websocket"])
    try:
        yield got
    finally:
        await client.disconnect()


async def receive(got: asyncio.Queue[tuple[str, Any]], name: str) -> Any:
    while True:
        event, data = await asyncio.wait_for(got.get(), 10)
        if event == name:
            return data


async def run_claude_hook(port: int, cwd: Path, hook: dict[str, Any] = HOOK) -> dict[str, Any]:
    env = dict(os.environ, CLAUDE_MPM_SERVER_PORT=str(port), CLAUDE_MPM_SERVER_HOST="127.0.0.1")
    proc = await asyncio.create_subprocess_exec(
        str(VENV / "bin" / "claude-hook"), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, env=env, cwd=cwd)
    out, _ = await asyncio.wait_for(proc.communicate(json.dumps(hook).encode()), 60)
    answer: dict[str, Any] = json.loads(out)
    return answer
