"""The loopback rule as a user meets it: every listener bound to 0.0.0.0 (a free port), typed
as a command line in a child process. Refused with one sentence and exit 2 when its protection
is missing; started, with one stderr line saying what is exposed and how, when it is given."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from sio_sniffer.model.addresses import RemoteBindRefused
from sio_sniffer.web.dashboard_page import DashboardPage

TIMEOUT = 15
EXPOSED = re.compile(r": (?P<what>[\w -]+?) on 0\.0\.0\.0:(?P<port>\d+) is reachable from "
                     r"other machines; (?P<how>.*)")
# an upstream nobody listens on: the proxy starts without one
PROXY = ("proxy", "--upstream", "http://127.0.0.1:9", "--single-process", "--log", "/dev/null")
TWO_PROCESS_PROXY = PROXY[:3] + PROXY[4:]  # the pages live in the observer process


async def _refused(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == 2, err.decode()
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines  # one sentence, no traceback
    return lines[0]


@asynccontextmanager
async def _started(*argv: str, exposed: str) -> AsyncIterator[re.Match[str]]:
    """Run the command until it prints the exposure line for ``exposed``; yield that line's
    match (port, how), then SIGTERM it and expect exit 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sio_sniffer", *argv,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    assert proc.stderr is not None
    seen: list[str] = []
    try:
        while True:
            line = (await asyncio.wait_for(proc.stderr.readline(), TIMEOUT)).decode()
            assert line, f"exited before saying it is exposed: {seen}"
            seen.append(line)
            match = EXPOSED.search(line)
            if match and match["what"] == exposed:
                break
        yield match
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), TIMEOUT)
    assert proc.returncode == 0, seen


async def _status(url: str, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status


async def test_proxy_off_loopback_needs_allow_remote() -> None:
    line = await _refused(*PROXY, "--listen", "0.0.0.0:0")
    assert "--allow-remote" in line and "0.0.0.0" in line
    async with _started(*PROXY, "--listen", "0.0.0.0:0", "--allow-remote",
                        exposed="proxy") as match:
        assert int(match["port"]) > 0
        assert "without a token (--allow-remote)" in match["how"]


async def test_live_page_off_loopback_asks_for_the_printed_token() -> None:
    async with _started(*TWO_PROCESS_PROXY, "--listen", "127.0.0.1:0", "--ui", "0.0.0.0:0",
                        exposed="live page") as match:
        token = match["how"].removeprefix("open it with ?token=")
        assert token and token != match["how"]
        base = f"http://127.0.0.1:{match['port']}/"
        assert await _status(base) == 401
        assert await _status(base + "?token=wrong") == 401
        assert await _status(f"{base}?token={token}") == 200


async def test_live_page_takes_the_users_ui_token() -> None:
    async with _started(*PROXY, "--listen", "127.0.0.1:0", "--ui", "0.0.0.0:0",
                        "--ui-token", "s3cret", exposed="live page") as match:
        assert match["how"] == "open it with ?token=s3cret"
        assert await _status(f"http://127.0.0.1:{match['port']}/?token=s3cret") == 200


async def test_metrics_off_loopback_asks_for_a_bearer_token() -> None:
    async with _started(*PROXY, "--listen", "127.0.0.1:0", "--metrics", "0.0.0.0:0",
                        "--ui-token", "m3trics", exposed="metrics listener") as match:
        assert match["how"] == "send 'Authorization: Bearer m3trics'"
        url = f"http://127.0.0.1:{match['port']}/metrics"
        assert await _status(url) == 401
        assert await _status(url, {"Authorization": "Bearer m3trics"}) == 200


async def test_admin_ui_off_loopback_needs_credentials() -> None:
    line = await _refused(*PROXY, "--listen", "127.0.0.1:0", "--admin-ui", "0.0.0.0:0")
    assert "--admin-ui-user and --admin-ui-password" in line
    async with _started(*PROXY, "--listen", "127.0.0.1:0", "--admin-ui", "0.0.0.0:0",
                        "--admin-ui-user", "u", "--admin-ui-password", "p",
                        exposed="Admin UI bridge") as match:
        assert "--admin-ui-user and --admin-ui-password" in match["how"]


async def test_serve_off_loopback_needs_allow_remote() -> None:
    line = await _refused("serve", "--host", "0.0.0.0", "--port", "0")
    assert line.startswith("sio-sniffer serve: ") and "--allow-remote" in line
    async with _started("serve", "--host", "0.0.0.0", "--port", "0", "--allow-remote",
                        exposed="diagnostic server") as match:
        assert await _status(f"http://127.0.0.1:{match['port']}/socket.io/?EIO=4"
                             "&transport=polling") == 200


async def test_replay_serve_off_loopback_needs_allow_remote(captured: Path) -> None:
    line = await _refused("replay", str(captured), "--serve", "--listen", "0.0.0.0:0")
    assert line.startswith("sio-sniffer replay: ") and "--allow-remote" in line
    async with _started("replay", str(captured), "--serve", "--listen", "0.0.0.0:0",
                        "--allow-remote", exposed="replayed server") as match:
        assert int(match["port"]) > 0


async def test_report_ui_off_loopback_asks_for_the_token(captured: Path) -> None:
    async with _started("report", str(captured), "--ui", "0.0.0.0:0",
                        exposed="live page") as match:
        token = match["how"].removeprefix("open it with ?token=")
        base = f"http://127.0.0.1:{match['port']}/"
        assert await _status(base) == 401
        assert await _status(f"{base}?token={token}") == 200


def test_dashboard_test_page_is_loopback_only() -> None:
    """dashboard-test has no --host: its page (which hands --token to the browser) is served on
    127.0.0.1; asked for another host the page refuses, as every opt-in listener does."""
    assert not DashboardPage("http://127.0.0.1:8765").policy.remote
    with pytest.raises(RemoteBindRefused, match="--allow-remote"):
        DashboardPage("http://127.0.0.1:8765", host="0.0.0.0")


async def test_dashboard_test_config_is_not_given_to_a_foreign_host_name() -> None:
    """The page's config (it carries --token) is served to a loopback Host, and refused with 403
    to any other name, though the request reached 127.0.0.1 (a rebound DNS name)."""
    page = DashboardPage("http://127.0.0.1:8765", auth={"token": "s3cret"})
    await page.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{page.url}config.json") as response:
                assert response.status == 200
                assert (await response.json())["auth"] == {"token": "s3cret"}
            async with http.get(f"{page.url}config.json",
                                headers={"Host": f"attacker.example:{page.port}"}) as response:
                assert response.status == 403
                assert "s3cret" not in await response.text()
    finally:
        await page.stop()
