"""Fixtures: the real claude-mpm monitor, started once per module (see mpm_peers)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.mpm_peers import SERVER_SCRIPT, Monitor, ensure_venv


@pytest.fixture(scope="module")
def mpm_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """claude-mpm writes a .claude-mpm/ folder into its working directory: keep it out of ours."""
    return tmp_path_factory.mktemp("mpm-home")


@pytest.fixture(scope="module")
def monitor(mpm_home: Path) -> Iterator[Monitor]:
    python = ensure_venv()
    port = free_port()
    proc = subprocess.Popen([str(python), "-c", SERVER_SCRIPT, str(port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=mpm_home)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield Monitor(port, proc)
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def mpm_port(monitor: Monitor) -> int:
    return monitor.port


