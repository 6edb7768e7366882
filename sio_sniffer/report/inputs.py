"""The inputs of a report: capture and HAR files, read as one stream merged by time."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence

from sio_sniffer.capture import (
    CaptureError,
    CaptureItem,
    CaptureProblem,
    CaptureReader,
    capture_id_of,
    cluster_node_of,
    merge,
)
from sio_sniffer.capture.har import HarReader, is_har
from sio_sniffer.report.clocks import Clock, estimate, shifted


def _reader(path: str) -> CaptureReader | HarReader:
    return HarReader(path) if is_har(path) else CaptureReader(path)


class Inputs:
    """Several capture/HAR files read as one stream of items, merged by time."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self.paths = [str(p) for p in paths]
        self.readers: list[CaptureReader | HarReader] = []
        ids = []
        for path in self.paths:
            if not os.path.exists(path):
                raise CaptureError(f"{path}: no such file")
            self.readers.append(_reader(path))
            ids.append(path if is_har(path) else capture_id_of(path))
        self._ids = ids
        self.clocks: list[Clock] = []
        # The node a --cluster capture stood at, when all the inputs are that one capture
        # (its segments): its cluster facts then judge as the live sniffer did. Captures of
        # several nodes merged are judged as one traffic instead.
        nodes = {None if is_har(p) else cluster_node_of(p) for p in self.paths}
        self.cluster_node = (nodes.pop() if len(nodes) == 1 and len(set(ids)) == 1
                             else None)

    def align(self, path: str = "/socket.io/",
              given: Mapping[str, float] | None = None) -> list[Clock]:
        """Estimate each capture's clock offset (see :mod:`sio_sniffer.report.clocks`); the
        merged stream then carries the corrected stamps. ``given`` maps a file, as named on
        the command line, to its offset in seconds."""
        given = dict(given or {})
        unknown = sorted(set(given) - set(self.paths))
        if unknown:
            raise CaptureError(f"--clock-offset names {', '.join(unknown)}, which is not one "
                               f"of the files to report on ({', '.join(self.paths)})")
        if len(set(self._ids)) > 1 or given:
            self.clocks = estimate(self.paths, lambda i: _reader(self.paths[i]), path, given)
        return self.clocks

    def __iter__(self) -> Iterator[CaptureItem]:
        if not self.clocks:
            return merge(self.readers, self._ids)
        return merge([shifted(r, c.offset) for r, c in zip(self.readers, self.clocks,
                                                               strict=True)], self._ids)

    @property
    def problems(self) -> list[CaptureProblem]:
        return [p for r in self.readers for p in r.problems]

    @property
    def upstreams(self) -> list[str]:
        return sorted({r.header.upstream for r in self.readers
                       if isinstance(r, CaptureReader) and r.header is not None
                       and r.header.upstream})


def open_inputs(paths: Sequence[str | os.PathLike[str]]) -> Inputs:
    """The merged items of capture and HAR files (``problems`` fill in while iterating)."""
    return Inputs(paths)
