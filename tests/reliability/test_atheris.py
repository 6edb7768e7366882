"""A bounded atheris session inside the suite: the codec and the HTTP/WebSocket tap take a few
thousand coverage-guided inputs without an unexpected exception (examples/fuzz.py runs more)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "examples" / "fuzz.py"


@pytest.mark.skipif(sys.version_info < (3, 11),
                    reason="atheris does not build for Python 3.10, so it is not installed there")
@pytest.mark.parametrize(("target", "runs"), [("codec", 5000), ("tap", 3000)])
def test_atheris_bounded(target: str, runs: int, tmp_path: Path) -> None:
    """atheris finds nothing in ``runs`` inputs against the target and says it did them all."""
    done = subprocess.run([sys.executable, str(FUZZ), target, f"-runs={runs}"],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"FUZZ_CORPUS": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Done {runs} runs" in done.stderr


def test_proxy_fuzz_bounded() -> None:
    """examples/fuzz.py's proxy mode: 300 random and mutated inputs through a running sniffer,
    each byte for byte at the upstream, no consumer failing."""
    done = subprocess.run([sys.executable, str(FUZZ), "proxy", "--runs", "300", "--seed", "7"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"runs": 300' in done.stdout
