"""`sio-sniffer bench`: the same workload direct and through the sniffer, A/B in one run.

A sniffer that slows the app changes the bug it is meant to find, so the figure that matters is
the ratio to no sniffer at all, measured on the same machine in the same minute. Every workload
runs a Socket.IO server and its clients as separate processes (Node ``socket.io`` and
``socket.io-client`` when ``node`` exists, installed into a cache on first use; python-socketio
otherwise), and the sniffer as its own process too (``python -m sio_sniffer proxy``, with full
decoding, analysis and the JSON log written to a file, the way users run it), so neither the
clients' load nor the bench itself shares the sniffer's event loop. Runs alternate direct and
through the sniffer (and, when asked, a second sniffer serving ``--metrics`` and scraped every
second, and mitmproxy), and the table gives medians and per-pair ratios
with their spread, because these machines are noisy.

Modules: :mod:`.workloads` (the scenarios), :mod:`.processes` (running the peers, the sniffer
and mitmproxy), :mod:`.measure` (the sniffer process' memory and CPU), :mod:`.table` (the
figures and verdicts) and :mod:`.runner` (the A/B runs). :mod:`.peer` is the python-socketio
peer used when Node is missing, run as ``python -m sio_sniffer.bench.peer server|clients JSON``;
it speaks the same JSON lines as ``bench/node/*.js``.
"""

from __future__ import annotations

from sio_sniffer.bench.measure import cpu_seconds, proc_status, process_tree, wait_idle
from sio_sniffer.bench.processes import (
    NODE_MODULES_ENV,
    BenchError,
    Child,
    Peers,
    cache_dir,
    find_peers,
)
from sio_sniffer.bench.runner import Bench, bench
from sio_sniffer.bench.table import Row, render_table, summarize
from sio_sniffer.bench.workloads import (
    DEFAULT_SOAK_RATE,
    DEFAULT_WORKLOADS,
    METRICS_TARGET,
    WORKLOADS,
    BenchConfig,
    Run,
    Workload,
    build_workloads,
)

__all__ = ["DEFAULT_SOAK_RATE", "DEFAULT_WORKLOADS", "METRICS_TARGET", "NODE_MODULES_ENV",
           "WORKLOADS", "Bench", "BenchConfig",
           "BenchError", "Child", "Peers", "Row", "Run", "Workload", "bench", "build_workloads",
           "cache_dir", "cpu_seconds", "find_peers", "proc_status", "process_tree",
           "render_table", "summarize", "wait_idle"]
