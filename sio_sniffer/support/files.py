"""Files the sniffer creates that may hold payloads (the log, HTML reports): owner-only.

A log or a report holds event arguments, and event arguments can be anyone's data; on a shared
machine the default umask would let every user read them. Captures are opened the same way by
the capture writer. Size-rotated files (``--capture-rotate``, ``--log-rotate``) are numbered
the one way :func:`numbered` says.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

OWNER_ONLY = 0o600


def open_private(path: str | Path, *, append: bool = False, buffering: int = -1) -> IO[bytes]:
    """``path`` opened for writing bytes, created 0600 when it does not exist yet (an existing
    file keeps the mode its owner gave it); truncated unless ``append``. ``buffering=0`` gives
    the raw file, whose ``write`` may write less than it was given."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    return os.fdopen(os.open(path, flags, OWNER_ONLY), "ab" if append else "wb",
                     buffering=buffering)


def numbered(path: str | Path, n: int) -> Path:
    """Part ``n`` of a size-rotated file: ``path`` itself first, then ``path.1``, ``path.2``, ...
    (a new part starts when the next line would take the current one past the size)."""
    path = Path(path)
    return path if n == 0 else path.with_name(f"{path.name}.{n}")
