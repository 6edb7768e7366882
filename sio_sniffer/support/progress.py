"""A one-line progress bar on stderr, redrawn in place with ``\\r`` and drawn only on a
terminal (a CI log or a pipe gets the results, not hundreds of redraws)."""

from __future__ import annotations

import sys
from typing import IO


class ProgressBar:
    def __init__(self, total: int, stream: IO[str] | None = None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.done = 0
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = -1

    def update(self, done: int, label: str) -> None:
        """``done`` of ``total`` finished; redraws only when the bar moves (or at the end)."""
        self.done = done
        filled = self.width * done // self.total
        if not self.enabled or (filled == self._last and done != self.total):
            return
        self._last = filled
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{self.total} {label[:40]:<40}")
        self.stream.flush()

    def step(self, label: str) -> None:
        """One more finished."""
        self.update(self.done + 1, label)

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
