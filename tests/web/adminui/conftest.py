"""The official Admin UI build, installed from npm once and kept under ~/.cache."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ADMIN_UI_VERSION = "0.5.1"


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sio-sniffer" / "admin-ui"


@pytest.fixture(scope="session")
def admin_ui_dist() -> Path:
    """``ui/dist`` of ``@socket.io/admin-ui`` (npm install on the first run, cached after)."""
    root = _cache_root()
    home = root / ADMIN_UI_VERSION
    dist = home / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
    if not (dist / "index.html").is_file():
        root.mkdir(parents=True, exist_ok=True)
        # Installed aside and renamed into place: an interrupted install is never reused.
        staging = Path(tempfile.mkdtemp(prefix="install-", dir=root))
        try:
            subprocess.run(["npm", "install", "--prefix", str(staging), "--no-audit", "--no-fund",
                            "--ignore-scripts", "--loglevel=error",
                            f"@socket.io/admin-ui@{ADMIN_UI_VERSION}"],
                           check=True, timeout=300, stdout=subprocess.DEVNULL)
            if home.exists():
                shutil.rmtree(home)
            staging.rename(home)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    assert (dist / "index.html").is_file(), f"npm did not install the Admin UI build in {dist}"
    return dist
