"""The loopback rule, one for every listener (proxy, live page, Admin UI, metrics, serve,
replay --serve, dashboard-test).

A loopback address is reachable only from this machine, so a listener there needs nothing;
anything else (0.0.0.0, a LAN address, a host name other than ``localhost``) may be reachable by
others, and :func:`bind_policy` then asks for the listener's protection (a token, the Admin UI's
credentials, or ``--allow-remote``) and :meth:`BindPolicy.notice` is the line it prints at start.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Literal

DEFAULT_HOST = "127.0.0.1"
# Where the diagnostic commands look when given no URL: claude-mpm's monitor.
DEFAULT_SERVER_URL = "http://localhost:8765"


def is_loopback(host: str) -> bool:
    """``127.0.0.0/8``, ``::1`` (bracketed or not) and ``localhost``; nothing else."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


# --- The one rule for every listener -------------------------------------------------------------
#
# A listener is protected in one of three ways once it is not on loopback:
#   "token":       the live page and --metrics: a token (the user's --ui-token, else made up) is
#                  asked of every request;
#   "credentials": the Admin UI bridge: the Admin UI's own login (--admin-ui-user/-password);
#   "opt-in":      the proxy, `serve` and `replay --serve`: they speak Socket.IO to real clients,
#                  which cannot be asked for a token without breaking transparency, so they are
#                  exposed only when the user says so with ALLOW_REMOTE_FLAG.

Protection = Literal["token", "credentials", "opt-in"]
ALLOW_REMOTE_FLAG = "--allow-remote"
UI_TOKEN_ENV = "SIO_SNIFFER_UI_TOKEN"


class RemoteBindRefused(Exception):
    """A listener off loopback without what protects it; the message is one sentence with the fix
    (the commands exit with status 2)."""


def show_address(host: str, port: int) -> str:
    """``host:port``, ``[v6]:port``."""
    name = host.strip("[]")
    return f"[{name}]:{port}" if ":" in name else f"{name}:{port}"


@dataclass(frozen=True)
class BindPolicy:
    """What :func:`bind_policy` decided for one listener: ``remote`` (not loopback) and the
    ``token`` to ask for (token listeners only; None: no token is asked)."""

    what: str
    host: str
    protection: Protection
    remote: bool
    token: str | None = None

    def admits(self, host_name: str, offered: str | None) -> Literal[200, 401, 403]:
        """A request to a token listener, by the name in its Host header and the token it
        offers: 200 to serve it; 403 without a token for a name that is not loopback (a page
        pointing a name it controls at 127.0.0.1, DNS rebinding); 401 for a missing or wrong
        token."""
        if self.token is None:
            return 200 if is_loopback(host_name) else 403
        given = (offered or "").encode()
        return 200 if hmac.compare_digest(given, self.token.encode()) else 401

    def notice(self, port: int) -> str | None:
        """The one stderr line a non-loopback listener prints at start (None on loopback)."""
        if not self.remote:
            return None
        where = f"{self.what} on {show_address(self.host, port)} is reachable from other machines"
        if self.protection == "token":
            how = f"open it with ?token={self.token}" if self.what == "live page" else \
                f"send 'Authorization: Bearer {self.token}'"
        elif self.protection == "credentials":
            how = "the Admin UI asks for --admin-ui-user and --admin-ui-password"
        else:
            how = f"anyone who reaches it is served, without a token ({ALLOW_REMOTE_FLAG})"
        return f"{where}; {how}"


def bind_policy(host: str, what: str, protection: Protection, *, token: str | None = None,
                credentials: bool = False, allow_remote: bool = False) -> BindPolicy:
    """The rule: a loopback ``host`` needs nothing (a given ``token`` is still asked for); any
    other host needs its protection: a ``token`` (made up when not given), ``credentials``, or
    ``allow_remote``. RemoteBindRefused otherwise, naming the fix."""
    remote = not is_loopback(host)
    if protection == "token":
        if remote and token is None:
            token = secrets.token_urlsafe(18)
        return BindPolicy(what, host, protection, remote, token)
    if remote and protection == "credentials" and not credentials:
        raise RemoteBindRefused(
            f"the {what} would be reachable from other machines on {host}: set --admin-ui-user "
            f"and --admin-ui-password, or bind it to 127.0.0.1")
    if remote and protection == "opt-in" and not allow_remote:
        raise RemoteBindRefused(
            f"the {what} would be reachable from other machines on {host} and its clients cannot "
            f"be asked for a token: pass {ALLOW_REMOTE_FLAG} to expose it, or bind it to 127.0.0.1")
    return BindPolicy(what, host, protection, remote)
