"""The inputs of a report: capture and HAR files, read as one stream merged by time."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from sio_sniffer.capture import (
    CaptureError,
    CaptureItem,
    CaptureProblem,
    CaptureReader,
    capture_id_of,
    merge,
)
from sio_sniffer.capture.har import HarReader, is_har


class Inputs:
    """Several capture/HAR files read as one stream of items, merged by time."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self.paths = [str(p) for p in paths]
        self.readers: list[CaptureReader | HarReader] = []
        ids = []
        for path in self.paths:
            if not os.path.exists(path):
                raise CaptureError(f"{path}: no such file")
            if is_har(path):
                self.readers.append(HarReader(path))
                ids.append(path)
            else:
                self.readers.append(CaptureReader(path))
                ids.append(capture_id_of(path))
        self._ids = ids

    def __iter__(self) -> Iterator[CaptureItem]:
        return merge(self.readers, self._ids)

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
