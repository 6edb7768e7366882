"""What the user chooses for the Admin UI bridge, and the error it reports when it cannot start."""

from __future__ import annotations

from dataclasses import dataclass

HOSTED_UI = "https://admin.socket.io"


@dataclass(frozen=True)
class AdminUIOptions:
    """Where and how the bridge serves (``--admin-ui`` and its companions)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    static_path: str | None = None


class AdminUIError(Exception):
    """The bridge cannot start: a one-sentence reason for the person who asked for it."""

