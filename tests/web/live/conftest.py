"""Fixtures of the live page tests: stacks of real peers, Chromium and a page that fails on
script errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, Page

from tests.web.live.ui_peers import Stack


@pytest.fixture
async def stack_factory() -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    stacks: list[Stack] = []

    async def make(**kwargs: Any) -> Stack:
        stack = Stack(**kwargs)
        stacks.append(stack)
        await stack.start()
        return stack

    yield make
    for stack in stacks:
        await stack.stop()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    """A page that fails the test on any script error."""
    new = await browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    new.on("pageerror", lambda e: errors.append(str(e)))
    yield new
    await new.close()
    assert errors == [], errors
