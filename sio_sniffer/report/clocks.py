"""The clocks of several captures: how far each one's stamps are off the first one's.

Captures of one cluster come from sniffers on different hosts, whose clocks differ by more than
an event takes to cross the cluster (3 ms of skew made healthy events look lost). Each capture
is decoded on its own, and an event that came in through one capture and was delivered in
another makes a pair: delivered minus ingested is the latency minus the skew. The smallest such
difference in each direction bounds the skew; with pairs both ways their half-difference is
the estimate (as NTP does), with pairs one way only the fastest delivery is taken as instant.
``--clock-offset FILE=SECONDS`` overrides the estimate of a file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sio_sniffer import model
from sio_sniffer.analysis import payload
from sio_sniffer.capture import CaptureItem
from sio_sniffer.model import Record
from sio_sniffer.pipeline.decode import Pipeline, PipelineConfig

# A value pairs an ingest with a delivery only when it is this distinctive (a short value may be
# in many events), and a delivery this long after its ingest is another event.
MIN_ANCHOR = 8
PAIR_WINDOW = 30.0
MAX_EVENTS = 50_000  # per capture and kind: the estimate needs only a few hundred pairs


@dataclass
class Clock:
    """The offset added to one capture's stamps, and what it rests on."""

    file: str
    offset: float = 0.0
    pairs: int = 0
    how: str = "reference"  # reference, estimated, given, no pairs

    def describe(self) -> str:
        basis = {"reference": "the reference clock", "given": "given by --clock-offset",
                 "no pairs": "no event pairs with the reference capture: left as it is",
                 "estimated": f"estimated from {self.pairs} event pair(s)"}[self.how]
        return f"{self.file} {self.offset * 1000:+.1f} ms ({basis})"


@dataclass
class _Seen:
    ingests: list[tuple[float, str]]  # (ts, its most distinctive string)
    deliveries: dict[str, list[float]]  # string leaf -> stamps of the deliveries carrying it


def _anchor(value: Any) -> str | None:
    found = [s for s in payload.anchors(payload.leaves(value), 4)
             if isinstance(s, str) and len(s) >= MIN_ANCHOR]
    return found[0] if found else None


def _seen(items: Iterable[CaptureItem], path: str) -> _Seen:
    seen = _Seen([], {})

    def add(rec: Record) -> None:
        ingested = None
        if rec.event == model.HTTP_REQUEST and rec.args is not None:
            ingested = payload.core(rec.args)
        elif rec.event == model.SIO_EVENT and rec.dir == "in":
            ingested = payload.main_argument(rec.args)
        if ingested is not None:
            anchor = _anchor(ingested)
            if anchor is not None and len(seen.ingests) < MAX_EVENTS:
                seen.ingests.append((rec.ts, anchor))
        elif rec.event == model.SIO_EVENT and rec.dir == "out":
            for leaf in payload.leaves(rec.args):
                if isinstance(leaf, str) and len(leaf) >= MIN_ANCHOR:
                    stamps = seen.deliveries.setdefault(leaf, [])
                    if len(stamps) < 64:
                        stamps.append(rec.ts)

    pipeline = Pipeline(PipelineConfig(path=path), add)
    for item in items:
        if not isinstance(item, Record):
            pipeline.feed(item)
    return seen


def _differences(ingests: _Seen, deliveries: _Seen) -> list[float]:
    """Delivered-in-one minus ingested-in-the-other, for each ingest delivered there."""
    out = []
    for ts, anchor in ingests.ingests:
        stamps = [t for t in deliveries.deliveries.get(anchor, ()) if abs(t - ts) < PAIR_WINDOW]
        if stamps:
            out.append(min(stamps) - ts)
    return out


def estimate(files: list[str], items: Callable[[int], Iterable[CaptureItem]], path: str,
             given: Mapping[str, float]) -> list[Clock]:
    """Each file's clock against the first one's; ``items(i)`` reads file ``i`` afresh."""
    clocks = [Clock(files[0], given.get(files[0], 0.0), how="given" if files[0] in given
                    else "reference")]
    if len(files) < 2:
        return clocks
    reference = _seen(items(0), path)
    for i, name in enumerate(files[1:], start=1):
        if name in given:
            clocks.append(Clock(name, given[name], how="given"))
            continue
        other = _seen(items(i), path)
        forward = _differences(reference, other)  # latency - skew
        backward = _differences(other, reference)  # latency + skew
        if forward and backward:
            skew = (min(backward) - min(forward)) / 2
        elif forward:
            skew = -min(forward)
        elif backward:
            skew = min(backward)
        else:
            clocks.append(Clock(name, 0.0, how="no pairs"))
            continue
        clocks.append(Clock(name, skew + clocks[0].offset, len(forward) + len(backward),
                            "estimated"))
    return clocks


def shifted(items: Iterable[CaptureItem], offset: float) -> Iterator[CaptureItem]:
    """``items`` with every stamp moved by ``offset`` seconds (the requests a response or a
    WebSocket open carries too, or their durations would change)."""
    if not offset:
        yield from items
        return
    for item in items:
        yield _shift(item, offset)


def _shift(item: Any, offset: float) -> Any:
    changes: dict[str, Any] = {"ts": item.ts + offset}
    request = getattr(item, "request", None)
    if request is not None:
        changes["request"] = _shift(request, offset)
    return dataclasses.replace(item, **changes)
