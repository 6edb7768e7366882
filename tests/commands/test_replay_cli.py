"""`sio-sniffer replay --serve` as a user types it: a child process playing the captured server
side, and a dashboard (socket.io-client in Node, polling then WebSocket) connecting to it."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from sio_sniffer.capture import CaptureReader
from sio_sniffer.replay import build_script
from tests.paths import NODE_DIR
from tests.rigs import NODE_ENV, TIMEOUT

DASHBOARD = NODE_DIR / "dashboard_client.js"


def _plain(value: Any) -> Any:
    """A payload as the dashboard prints it (bytes as {"hex": ...})."""
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


async def test_serve_plays_the_capture_to_a_dashboard_in_order(captured: Path) -> None:
    """The served events reach a real dashboard client in the captured order, with their
    payloads (binary included), at the captured timing scaled by --speed; Ctrl-C ends it."""
    script = build_script(CaptureReader(captured))
    source = max(script.clients.values(), key=lambda c: len(c.expected))
    want = [{"event": "received", "name": o.name, "args": _plain(o.args)} for o in source.expected
            if o.kind == "event" and o.nsp == "/"]
    assert len(want) >= 5
    served = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", "replay", str(captured), "--serve",
        "--listen", "127.0.0.1:0", "--speed", "4",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    dashboard = None
    try:
        assert served.stderr is not None
        line = (await asyncio.wait_for(served.stderr.readline(), TIMEOUT)).decode()
        assert "serving the captured server side on http://127.0.0.1:" in line, line
        url = line.rsplit(" ", 1)[1].strip()
        dashboard = await asyncio.create_subprocess_exec(
            "node", str(DASHBOARD), url, env=NODE_ENV, stdout=asyncio.subprocess.PIPE)
        assert dashboard.stdout is not None
        got: list[Any] = []
        while len(got) < len(want):
            line = json.loads(await asyncio.wait_for(dashboard.stdout.readline(), TIMEOUT))
            if line["event"] != "connect":
                got.append(line)
        assert got == want
        served.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(served.communicate(), TIMEOUT)
        assert served.returncode == 0, err.decode()
        assert "Traceback" not in err.decode()
    finally:
        for proc in (served, dashboard):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
