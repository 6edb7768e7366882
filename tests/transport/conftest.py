"""The relay runs on uvloop by default (``sio-sniffer proxy --loop auto``) and on asyncio when
embedded or asked to: every transport test runs on both loops."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> Mapping[str, LoopFactory]:
    factories: dict[str, LoopFactory] = {"asyncio": asyncio.new_event_loop}
    try:
        import uvloop
    except ImportError:  # not installed on Windows (see pyproject.toml)
        return factories
    factories["uvloop"] = uvloop.new_event_loop
    return factories
