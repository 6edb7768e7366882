"""report and replay given truncated, corrupt or hostile capture files: a clear message with the
line number, no traceback, and memory bounded by the reader's line limit, not by the file."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.test_security import capture_with_secrets, secret_server


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sio_sniffer", *args], capture_output=True,
                          text=True, timeout=120, check=False)


_RECORDED: list[bytes] = []  # one real capture, recorded once for the module


@pytest.fixture
async def capture(tmp_path: Path, py_server_factory: Any) -> Path:
    path = tmp_path / "cap.jsonl"
    if not _RECORDED:
        await capture_with_secrets(path, (await py_server_factory(secret_server)).url)
        _RECORDED.append(path.read_bytes())
    path.write_bytes(_RECORDED[0])
    return path


async def test_truncated_capture(capture: Path) -> None:
    """A capture cut in the middle of its last line (a killed writer): report reads all the
    rest, names the line as truncated and exits 1."""
    data = capture.read_bytes()
    lines = data.count(b"\n")
    capture.write_bytes(data[:-40])
    done = await asyncio.to_thread(_cli, "report", "--json", str(capture))
    assert done.returncode == 1
    assert f"{capture}:{lines}: truncated line" in done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout)["problems"]


HOSTILE: dict[str, bytes] = {
    "not json": b"this is not json at all\n",
    "binary junk": bytes(range(256)) + b"\n",
    "wrong shape": b'{"t": "ws_message", "conn": 5}\n',
    "unknown kind": b'{"t": "alien", "conn": "c1"}\n',
    "array": b"[1, 2, 3]\n",
    "deep nesting": b"[" * 200_000 + b"]" * 200_000 + b"\n",
    "deep object": b'{"t": "record", "ts": 1, "r": ' + b'{"a":' * 100_000 + b"1"
                   + b"}" * 100_000 + b"}\n",
    "bad base64": b'{"t": "ws_message", "conn": "c1", "ts": 1, "dir": "in", "opcode": 2, '
                  b'"payload_b64": "!!!", "wire_size": 3}\n',
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
async def test_corrupt_line_is_named(capture: Path, case: str) -> None:
    """A hostile line in the middle of a capture is reported with its line number; the lines
    around it are still read (the report still counts the session)."""
    lines = capture.read_bytes().splitlines(keepends=True)
    capture.write_bytes(b"".join(lines[:3]) + HOSTILE[case] + b"".join(lines[3:]))
    done = await asyncio.to_thread(_cli, "report", "--json", str(capture))
    assert done.returncode == 1, done.stderr
    assert f"{capture}:4:" in done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout)["summary"]["sessions"]["total"] >= 2


def test_huge_line_costs_bounded_memory(tmp_path: Path) -> None:
    """A 200 MB line (above the reader's 64 MB limit) is skipped and named; the reader's peak
    memory stays far below the file's size."""
    path = tmp_path / "huge.jsonl"
    header = {"format": "sio-sniffer-capture", "version": 1, "sniffer": "0", "upstream": "",
              "started": "2024-01-01T00:00:00Z", "capture_id": "x"}
    with path.open("wb") as f:
        f.write(json.dumps(header).encode() + b"\n")
        f.write(b'{"t": "ws_message", "payload": "')
        block = b"a" * (1 << 20)
        for _ in range(200):
            f.write(block)
        f.write(b'"}\n')
        f.write(b'{"t": "conn_open", "conn": "c1", "ts": 1.0, "peer": "127.0.0.1:1"}\n')
    # The child measures its own peak: VmHWM belongs to the memory of the program it runs
    # (RUSAGE_CHILDREN would include every earlier child of this test run, and even the
    # child's own ru_maxrss keeps the forked copy of this large pytest process from before exec).
    measure = ("import runpy, sys\n"
               "sys.argv = ['sio-sniffer', *sys.argv[1:]]\n"
               "try:\n"
               "    runpy.run_module('sio_sniffer', run_name='__main__')\n"
               "finally:\n"
               "    status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
               "    print('PEAK', status.split()[0], file=sys.stderr)\n")
    done = subprocess.run([sys.executable, "-c", measure, "report", "--json", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert f"{path}:2: line longer than" in done.stderr
    assert "Traceback" not in done.stderr
    peak_kib = int(done.stderr.rsplit("PEAK ", 1)[1])
    # one line limit (64 MB) plus the interpreter, never the 200 MB line
    assert peak_kib < 200 * 1024, peak_kib


@pytest.mark.parametrize("command", ["report", "replay"])
def test_wrong_version_and_not_a_capture(tmp_path: Path, command: str) -> None:
    """A capture from a newer format version, and a file that is no capture, are refused in
    one line naming line 1, exit code 2, for report and replay alike."""
    newer = tmp_path / "newer.jsonl"
    newer.write_text(json.dumps({"format": "sio-sniffer-capture", "version": 99,
                                 "sniffer": "9.9"}) + "\n")
    other = tmp_path / "other.jsonl"
    other.write_text('{"hello": "world"}\n')
    extra = ["--target", "http://127.0.0.1:9"] if command == "replay" else []
    for path, words in ((newer, "newer sio-sniffer"), (other, "not a sio-sniffer capture")):
        done = _cli(command, str(path), *extra)
        assert done.returncode == 2, done.stderr
        assert f"{path}:1:" in done.stderr and words in done.stderr
        assert "Traceback" not in done.stderr
