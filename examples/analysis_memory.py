"""Memory of the analysis over millions of records: flat once its bounded tables are full.

    python examples/analysis_memory.py --records 2000000

Feeds a synthetic mix (reconnecting clients, hook POSTs relayed to three clients with one in
fifty lost, acks, heartbeats; see sio_sniffer/analysis/loadgen.py) to one Analyzer with the
default configuration and prints the memory traced by tracemalloc at regular intervals.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from sio_sniffer.analysis import AnalysisConfig, Analyzer
from sio_sniffer.model import Record
from sio_sniffer.testing import records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=2_000_000, help="records to feed")
    parser.add_argument("--every", type=int, default=250_000, help="report interval")
    args = parser.parse_args()
    flags = 0

    def emit(record: Record) -> None:
        nonlocal flags
        flags += record.event == "flag"

    analyzer = Analyzer(AnalysisConfig(), emit)
    tracemalloc.start()
    start = time.perf_counter()
    print(f"{'records':>10} {'traced MiB':>11} {'peak MiB':>9} {'flags':>7} {'s':>7}")
    for fed, record in enumerate(records(args.records), start=1):
        analyzer.feed(record)
        if fed % args.every == 0:
            gc.collect()
            current, peak = tracemalloc.get_traced_memory()
            print(f"{fed:>10} {current / 2**20:>11.2f} {peak / 2**20:>9.2f} {flags:>7} "
                  f"{time.perf_counter() - start:>7.1f}", flush=True)
        if fed >= args.records:
            break
    tracemalloc.stop()


if __name__ == "__main__":
    main()
