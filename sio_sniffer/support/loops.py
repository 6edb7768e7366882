"""Which event loop the `proxy` command runs on.

uvloop where it is installed (it is a dependency everywhere but Windows): the relay spends most
of its time in transport callbacks, and uvloop's forwarded 0.88 of direct on `burst-ws` where
asyncio's forwarded 0.74 (`sio-sniffer bench -w burst-ws --sniffer-loop asyncio|uvloop`, same
machine, same hour). ``--loop asyncio`` keeps the standard loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

LOOPS = ("auto", "uvloop", "asyncio")
T = TypeVar("T")


class LoopError(Exception):
    """The loop asked for is not installed (the message says how to get it)."""


def resolve(choice: str) -> str:
    """``auto`` becomes uvloop when it can be imported, else asyncio."""
    if choice == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if choice == "uvloop":
            raise LoopError("--loop uvloop needs uvloop (pip install uvloop)") from None
        return "asyncio"
    return "uvloop"


def run(main: Callable[[], Coroutine[Any, Any, T]], choice: str = "auto") -> T:
    """Run ``main()`` to completion on the loop ``choice`` names (see :func:`resolve`)."""
    if resolve(choice) == "uvloop":
        import uvloop

        return uvloop.run(main())
    return asyncio.run(main())
