"""Helpers for the diagnostic suite's tests: subcommands in a child process, recorders, clients."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import socketio

from tests.paths import ROOT

# Runs one subcommand module the way `sio-sniffer` does, without depending on the console script
# being installed: the module's own add_arguments/run.
RUNNER = (
    "import argparse, importlib, sys\n"
    "m = importlib.import_module(sys.argv[1])\n"
    "p = argparse.ArgumentParser()\n"
    "m.add_arguments(p)\n"
    "sys.exit(m.run(p.parse_args(sys.argv[2:])))\n"
)


def subcommand_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


async def run_subcommand(module: str, *argv: str, timeout: float = 60.0,
                         env: dict[str, str] | None = None) -> Finished:
    """Run ``module`` as a subcommand in a child process (the server under test stays in ours)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUNNER, module, *argv, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env or subcommand_env(), cwd=ROOT)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Finished(proc.returncode, out.decode(), err.decode())


class Dashboard:
    """A python-socketio client that queues every event it receives."""

    def __init__(self, **client_kwargs: Any) -> None:
        self.client = socketio.AsyncClient(reconnection=False, **client_kwargs)
        self.events: asyncio.Queue[tuple[str, str, list[Any]]] = asyncio.Queue()
        self.disconnected = asyncio.Event()
        self.disconnect_reasons: list[str] = []
        self.connect_errors: dict[str, Any] = {}

    def listen(self, namespace: str = "/") -> None:
        async def on_any(name: str, *args: Any) -> None:
            await self.events.put((namespace, name, list(args)))

        async def on_disconnect(reason: str = "") -> None:
            self.disconnect_reasons.append(str(reason))
            self.disconnected.set()

        async def on_connect_error(data: Any = None) -> None:
            self.connect_errors[namespace] = data

        self.client.on("*", on_any, namespace=namespace)
        self.client.on("connect_error", on_connect_error, namespace=namespace)
        self.client.on("disconnect", on_disconnect, namespace=namespace)

    async def connect(self, url: str, namespaces: list[str] | None = None,
                      **kwargs: Any) -> None:
        for namespace in namespaces or ["/"]:
            self.listen(namespace)
        await self.client.connect(url, namespaces=namespaces or ["/"], **kwargs)

    async def next_named(self, name: str, timeout: float = 5.0) -> tuple[str, list[Any]]:
        """The next event called ``name`` (others are skipped), as (namespace, args)."""
        async def wait() -> tuple[str, list[Any]]:
            while True:
                namespace, got, args = await self.events.get()
                if got == name:
                    return namespace, args
        return await asyncio.wait_for(wait(), timeout)


def hook_body(subtype: str = "pre_tool", correlation_id: str = "corr-1",
              **inner: Any) -> dict[str, Any]:
    """The body claude-mpm's Python hook POSTs to /api/events."""
    return {"namespace": "", "event": "claude_event", "data": {
        "type": "hook", "subtype": subtype, "data": inner or {"tool_name": "Bash"},
        "session_id": "sess-1", "correlation_id": correlation_id, "cwd": "/work/project",
        "timestamp": "2026-01-01T00:00:00Z", "source": "claude_hooks"}}

