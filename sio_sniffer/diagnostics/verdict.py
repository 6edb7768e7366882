"""Check results and the catalogue of causes and fixes they cite.

The causes are the seed document's "Common Issues & Solutions" and claude-mpm's real failure
modes (shared/context/claude-mpm.md), written once here so ``diagnose`` and ``auth-test`` say
the same thing about the same observation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS = "pass"
FAIL = "fail"
WARN = "warn"
SKIP = "skip"
MARKS = {PASS: "✓", FAIL: "✗", WARN: "!", SKIP: "-"}


@dataclass(frozen=True, slots=True)
class Cause:
    code: str
    cause: str
    fix: str


@dataclass
class Check:
    """One line of a report: what was checked, what was seen, and on failure why and what to do."""

    name: str
    status: str
    observed: str
    cause: str | None = None
    fix: str | None = None
    code: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, name: str, observed: str, why: Cause, **data: Any) -> Check:
        return cls(name, FAIL, observed, why.cause, why.fix, why.code, data)

    @classmethod
    def warned(cls, name: str, observed: str, why: Cause, **data: Any) -> Check:
        """A finding worth knowing that does not break the server's own clients: shown with
        its cause and fix, not counted as a problem."""
        return cls(name, WARN, observed, why.cause, why.fix, why.code, data)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None and v != {}}

    def lines(self, width: int = 16) -> list[str]:
        out = [f"{MARKS[self.status]} {self.name:<{width}} {self.observed}"]
        if self.cause:
            out.append(f"  {'':<{width}} cause: {self.cause}")
        if self.fix:
            out.append(f"  {'':<{width}} fix:   {self.fix}")
        return out


def as_text(body: bytes | str, limit: int = 100) -> str:
    """A response body as a reader wants it in a report: decoded, on one line, trimmed (never a
    bytes repr)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


SERVER_DOWN = Cause(
    "server_not_running",
    "Connection refused: the Socket.IO server is not running on this host/port (or it runs on "
    "another port: `claude-mpm run --monitor` takes the first free port in 8765-8785)",
    "Start the server first (`claude-mpm monitor start`, or `sio-sniffer serve`), or check port "
    "conflicts with `lsof -i :PORT` and point the clients at the port it really uses")
UPSTREAM_DOWN = Cause(
    "upstream_down",
    "The upstream server is down (the sniffer in front of it could not reach it and answered "
    "502 itself)",
    "Start it (`claude-mpm monitor start`, or `sio-sniffer serve`), or point the sniffer's "
    "--upstream at the port it really uses; the sniffer needs no restart")
TCP_TIMEOUT = Cause(
    "tcp_timeout",
    "Connection timeouts: nothing answered the TCP connect in time (firewall, wrong host, or an "
    "overloaded server)",
    "Check the host and port, any firewall in between, and the server's load; then retry")
NOT_ENGINEIO = Cause(
    "not_engineio",
    "The path does not answer an Engine.IO v4 handshake: not a Socket.IO server there, another "
    "path, or an incompatible version",
    "Check the URL and the Engine.IO path (default /socket.io/), and pair python-socketio 5.x / "
    "socket.io 4.x servers with socket.io-client 3.x/4.x")
NO_HEALTH = Cause(
    "no_health",
    "No /health endpoint answered as expected (claude-mpm's monitor answers JSON there)",
    "Not fatal for Socket.IO; if this should be claude-mpm's monitor, check that it is the "
    "process on this port (`curl http://localhost:8765/health`)")
POLLING_ONLY = Cause(
    "polling_only",
    "WebSocket upgrade refused: the server runs polling only (transports=['polling']) or "
    "something in between strips the Upgrade/Connection headers",
    "Enable the websocket transport on the server, and make any proxy pass `Upgrade` and "
    "`Connection: upgrade` through; polling works but costs a request per message")
NAMESPACE_MISSING = Cause(
    "namespace_missing",
    "Namespace routing: the server has no handler for this namespace and answers CONNECT_ERROR "
    "'Unable to connect' (claude-mpm's monitor registers only '/')",
    "Connect the clients to a namespace the server has (claude-mpm: '/', hooks POST "
    "/api/events), or register the namespace on the server")
CONNECT_REFUSED = Cause(
    "connect_refused",
    "The server's connect handler refused the connection",
    "Read the server's message above; send the auth the server expects")
CONNECT_UNANSWERED = Cause(
    "auth_connect_unanswered",
    "A CONNECT carrying an auth payload is never answered: the server's connect handler takes no "
    "`auth` argument and raises (claude-mpm's bug); python-socketio reports 'Unexpected "
    "connection error', socket.io-client times out",
    "Connect without an auth payload (claude-mpm has no auth), or give the server's handler the "
    "argument: `async def connect(sid, environ, auth=None)`")
# The same bug on a server that lets clients in without auth, as claude-mpm's own dashboard
# connects: only a client that sends auth anyway (a token from another setup) is hit.
AUTH_UNANSWERED_WARNING = Cause(
    CONNECT_UNANSWERED.code,
    "A CONNECT carrying an auth payload is never answered (the connect handler takes no `auth` "
    "argument: claude-mpm's bug). This matters only to clients that send auth: the server lets "
    "clients in without it, and its own dashboard sends no auth, so it connects fine",
    "Connect your own clients without an auth payload (claude-mpm has no auth), or give the "
    "server's handler the argument: `async def connect(sid, environ, auth=None)`")
TOKEN_MISMATCH = Cause(
    "token_mismatch",
    "Invalid authentication token: the token differs between client and server",
    "Verify both use 'dev-token' or check CLAUDE_MPM_SOCKETIO_TOKEN (and --token)")
ANY_TOKEN_ACCEPTED = Cause(
    "any_token_accepted",
    "The server refuses clients without a token but accepts a wrong one: the token is not "
    "compared",
    "Compare the token in the server's connect handler and raise ConnectionRefusedError")
CONNECT_SLOW = Cause(
    "connect_timeout",
    "Connection timeouts: the connection did not complete in time (server performance or "
    "network issues)",
    "Check server logs and load; increase the client's timeout values")
HOOK_REJECTED = Cause(
    "hook_rejected",
    "The server answered the hook POST with an error, so the event is dropped (claude-mpm "
    "answers 500 to bad JSON and to bodies over aiohttp's 1 MiB limit; the hook never retries)",
    "Read the server's log for the exception; keep hook bodies valid JSON and under 1 MiB "
    "(`web.Application(client_max_size=...)` raises the limit)")
HOOK_NO_ENDPOINT = Cause(
    "hook_no_endpoint",
    "No ingest endpoint at /api/events: this server expects hook events another way (older "
    "layouts: a Socket.IO client emitting on /hook)",
    "Point the hook at the server's ingest path, or use a claude-mpm 5.4+ monitor")
HOOK_TIMEOUT = Cause(
    "hook_timeout",
    "The hook POST was not answered within the hook's 2 s timeout: the event is dropped",
    "Find what blocks the server's event loop; keep the ingest handler fast")
HOOK_SLOW = Cause(
    "slow_ingest",
    "The hook POST took longer than 300 ms: claude-mpm's bash fast-hook (curl --max-time 0.3) "
    "gives up and loses the event",
    "Answer the POST first and relay afterwards; remove whatever slows the server (or a proxy "
    "in between)")
TWO_SERVERS = Cause(
    "two_servers",
    "Two servers answer on this port (an older one bound with reuse_port, or a load balancer "
    "without sticky sessions): a session opened on one is unknown to the other, so clients "
    "keep losing their session, and each hook POST reaches either server while a dashboard "
    "hears only the one it is connected to",
    "Stop the second server (`lsof -i :PORT` lists both; `claude-mpm monitor stop`, then start "
    "one), or put sticky sessions on the load balancer")
HOOK_TO_OTHER_SERVER = Cause(
    "two_servers",
    "The hook POST reached the other of the two servers on this port (see 'one server'): "
    "the dashboard client is connected to the one that never got the event",
    TWO_SERVERS.fix)
HOOK_NOT_RELAYED = Cause(
    "not_relayed",
    "Events sent but not received: the server took the hook event but nothing reached the "
    "dashboard (room-based broadcasting not working, a relay to a room nobody joined, or a relay "
    "handler that drops it)",
    "Verify clients join the correct rooms, or emit to everyone on '/' as claude-mpm does "
    "(`sio.emit(name, data)` with no room), and that the relay runs for every event")
HOOK_WRONG_NAME = Cause(
    "event_name_mismatch",
    "Hook connects but dashboard doesn't show events: the event arrives under a name the "
    "dashboard does not listen to, so it is silently ignored",
    "Emit one of the names the dashboard listens to (claude-mpm: claude_event, hook_event, "
    "tool_event, session_event, ...), or add a listener for this name")
HOOK_FIELDS_LOST = Cause(
    "fields_lost",
    "The relayed event lost fields the dashboard pairs events by (correlation_id, cwd, subtype, "
    "session_id)",
    "Pass these fields through the server's normalisation unchanged")
HOOK_DUPLICATE = Cause(
    "duplicate",
    "The dashboard got the same event more than once (two relay paths emitting it)",
    "Relay each ingested event from one place only")
EVENTS_LOST = Cause(
    "events_lost",
    "Some events were sent but not received at the dashboard",
    "See the sniffer flags below for each lost event's most likely cause")
PING_TIMEOUT = Cause(
    "ping_timeout",
    "The client dropped the connection with a ping timeout: the server's pings did not arrive "
    "within the pingInterval + pingTimeout it advertised (settings too tight for this path, a "
    "blocked server event loop, or a buffering hop in between)",
    "Raise ping_timeout (claude-mpm uses ping_interval=30, ping_timeout=60), keep the server's "
    "handlers non-blocking, and keep any proxy's read timeout above pingInterval + pingTimeout")
NO_RECONNECT = Cause(
    "no_reconnect",
    "After a dropped transport the client did not get back in time",
    "Check the server accepts new sessions after a drop (sticky sessions behind a load "
    "balancer, port drift after a restart), and the client's reconnection settings")
