"""Fixtures shared by the capture tests: one real captured session, recorded once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from capture_peers import AppServer, capture_session


@pytest.fixture(scope="session")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One capture with secrets of a python-socketio client and a Node client, shared."""
    path = tmp_path_factory.mktemp("cap") / "session.jsonl"

    async def main() -> None:
        srv = AppServer()
        await srv.start()
        try:
            await capture_session(srv.url, path, show_secrets=True)
        finally:
            await srv.stop()

    asyncio.run(main())
    return path


