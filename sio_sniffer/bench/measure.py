"""Measuring the sniffer process: its memory, CPU time, catching up, and copies it dropped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import Sequence

# The sniffer is "caught up" once it uses less than this share of a core (it decodes after
# forwarding, so a burst can leave it busy after the clients are done).
IDLE_CPU_SHARE = 0.05


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


_DROPPED = re.compile(r"observer process fell behind: (\d+) bytes")


def dropped_copies(stderr: Sequence[str]) -> int:
    """Bytes of copies the sniffer's relay dropped because its observer fell too far behind
    (it says so on stderr when it ends)."""
    return sum(int(m.group(1)) for line in stderr if (m := _DROPPED.search(line)))
