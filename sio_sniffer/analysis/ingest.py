"""Ingest and the server's HTTP answers.

A POST to an ingest path (or one a ``[[rule]]`` accepts) is a hook handing the server an event
to relay: it opens an expectation, and its answer is checked for rejections and slowness. An
Engine.IO request answered 400 for an unknown session waits ``deadline`` seconds to be judged:
if other requests of that session kept succeeding, two servers answer on the port; otherwise
the server restarted (or the session predates the proxy). A 400 after the client itself closed
the session answers a request still in flight and is no flag.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any

from sio_sniffer import model
from sio_sniffer.analysis.bookkeeping import Latencies, Part, Shared
from sio_sniffer.analysis.correlate import Correlator, Expectation
from sio_sniffer.analysis.liveness import Liveness
from sio_sniffer.analysis.lost import TWO_SERVERS_MEMORY, UPSTREAM_DOWN_HINT, ingest_hint
from sio_sniffer.analysis.relay import Relay
from sio_sniffer.analysis.sessions import REFUSED_400
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F
from sio_sniffer.model.probes import SNIFFER_502_PREFIX


@dataclass(slots=True)
class Sid400:
    """A session the server answered 400 for, waiting to be judged: restarted or two servers."""

    first: float
    count: int = 1
    alive_after: int = 0
    known: bool = False
    record: Record | None = None
    deferred: bool = False  # judged once more later, to see a fresh session disowned too


TWINS_HINT = ("stop the second server on the port (reuse_port or port drift: check "
              "`lsof -i :PORT`), or use sticky sessions behind a load balancer")
# A session disowned (400) this soon (seconds) after its handshake was answered was answered by
# another server: no server restarts that fast.
FAST_400 = 1.0


class Ingest(Part):
    """Hook POSTs and HTTP answers: the hooks seen, ingest status and latency, and the sessions
    answered 400 (owner of the ``sid400`` timer)."""

    def __init__(self, shared: Shared, correlator: Correlator, relay: Relay,
                 liveness: Liveness) -> None:
        super().__init__(shared)
        config = shared.config
        self.paths = tuple(p.rstrip("/") for p in config.effective_ingest_paths())
        self.slow_ms = config.effective_slow_ingest_ms()
        self.max_body = config.effective_ingest_max_body()
        self.correlator = correlator
        self.relay = relay
        self.liveness = liveness
        self.hooks: OrderedDict[tuple[str, str], int] = OrderedDict()
        self.status: Counter[str] = Counter()
        self.latency = Latencies(config.latency_samples)
        self.sid400: OrderedDict[str, Sid400] = OrderedDict()
        # Sessions disowned (400) within FAST_400 of their handshake: sid -> (opened, first 400).
        self.fast_400: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self.hooks_watched = False  # a "hooks" timer was set (once per run)
        # What each ingest request carried that may explain its answer: (conn, seq) ->
        # (body size, the JSON parser's complaint, the body's first bytes).
        self.bodies: OrderedDict[tuple[str | None, Any], tuple[Any, Any, Any]] = OrderedDict()
        # Answers that completed before their request did (the sniffer's own 502 goes out as
        # soon as the request starts): (conn, seq) -> (status, duration_ms, why unreachable),
        # given to the expectation its request opens.
        self.early: OrderedDict[tuple[str | None, Any], tuple[int, Any, str | None]] = (
            OrderedDict())
        # Connections the sniffer answered itself (502) because the server was unreachable.
        self.unreachable: OrderedDict[str, str] = OrderedDict()

    def _is_ingest(self, record: Record) -> bool:
        path = record.get("path")
        return (record.get("method") == "POST" and isinstance(path, str)
                and (path.rstrip("/") in self.paths
                     or self.correlator.rule_for_http(path) is not None))

    def http_request(self, record: Record) -> None:
        if not self._is_ingest(record):
            return
        peer = str(record.get("peer") or "?").rsplit(":", 1)[0]
        hook_key = (peer, str(record.get("user_agent") or "?"))
        self.hooks[hook_key] = self.hooks.get(hook_key, 0) + 1
        self.hooks.move_to_end(hook_key)
        self.bounds.bound(self.hooks, 256)
        body_size = record.get("body_size")
        if self.max_body is not None and isinstance(body_size, int) and body_size > self.max_body:
            self.flag(record.ts, F.PAYLOAD_TOO_LARGE, "ingest_body",
                      f"a POST to {record.get('path')} carries {body_size} bytes, above the "
                      f"ingest limit of {self.max_body} bytes",
                      "the server refuses bodies this big (aiohttp's default client_max_size is "
                      "1 MiB): raise the limit on the server or send smaller events", record,
                      size=body_size, limit=self.max_body)
        path = str(record.get("path"))
        rule = self.correlator.rule_for_http(path)
        self.relay.expect(record, "http", rule, path=path)
        self.bodies[(record.conn, record.get("seq"))] = (
            body_size, record.get("body_error"), record.get("body_start"))
        self.bounds.bound(self.bodies, 1024)
        answer = self.early.pop((record.conn, record.get("seq")), None)
        exp = self.correlator.for_request(record.conn, record.get("seq"))
        if answer is not None and exp is not None:
            self._answered(exp, *answer)

    def watch_hooks(self, record: Record) -> None:
        """A client connected on the profile's namespace: if no hook posts within
        ``hook_silence``, say so once (claude-mpm's failure mode: hooks not installed, or
        pointed at another port)."""
        profile = self.profile
        if (self.hooks_watched or self.hooks or profile is None or not profile.ingest_paths
                or profile.nsp not in (None, record.nsp)):
            return
        self.hooks_watched = True
        self.schedule(record.ts + self.config.hook_silence, "hooks", record.eio_sid)

    def hooks_due(self, sid: str | None, due: float) -> None:
        if self.hooks:
            return
        connected = [s for s in self.sessions.open.values() if s.nsps]
        if not connected:
            self.hooks_watched = False  # the next client to connect starts the watch again
            return
        who = ", ".join(s.label() for s in connected[:4])
        self.flag(due, F.NO_HOOKS, "no_posts",
                  f"{len(connected)} client(s) connected ({who}) for "
                  f"{self.config.hook_silence:g} s, and no hook has posted to "
                  f"{', '.join(self.paths)} through this sniffer since it started",
                  "if the app was working meanwhile, its hooks are not installed or post to "
                  "another port: point them at this sniffer (claude-mpm: "
                  "CLAUDE_MPM_SERVER_PORT for claude-hook, CLAUDE_MPM_SOCKETIO_PORT for the "
                  "fast hook; or let the sniffer own 8765 and move the monitor)", None,
                  eio_sid=sid, clients=[s.eio_sid for s in connected[:16]])

    def upstream_error(self, record: Record) -> None:
        """The sniffer could not reach the server for this connection and answers 502 itself."""
        if record.conn is not None:
            self.unreachable[record.conn] = str(record.get("reason") or "unreachable")
            self.bounds.bound(self.unreachable, 1024)

    def abandoned(self, record: Record) -> None:
        """A hook that hangs up before its POST is answered gave up on it: whatever the server
        does next, the hook counts that event as failed (claude-mpm's fast hook waits 0.3 s,
        the Python hook 2 s)."""
        if not self._is_ingest(record):
            return
        exp = self.correlator.for_request(record.conn, record.get("seq"))
        if exp is None:
            return
        self.correlator.remove(exp)
        waited = record.ts - exp.ts
        self.relay.hook_gave_up(exp, record.ts,
                                f"POST {exp.path}: the hook hung up {waited:.2f} s after "
                                "posting, before the server answered: the event is lost on "
                                "the hook's side whatever the server does next",
                                "the server answers too slowly for the hook's timeout: answer "
                                "the POST at once and relay afterwards (claude-mpm's fast hook "
                                "gives up after 0.3 s, its Python hook after 2 s)")

    def http(self, record: Record) -> None:
        status = record.get("status")
        if not isinstance(status, int):
            return
        if record.get("engineio"):
            self._engineio_http(record, status)
            return
        if not self._is_ingest(record):
            return
        down = self.unreachable.pop(record.conn or "", None)
        body = record.get("body")
        if (down is None and status == 502 and isinstance(body, str)
                and body.startswith(SNIFFER_502_PREFIX)):
            # The sniffer's own answer, recognised by its body whatever order records came in.
            down = body[len(SNIFFER_502_PREFIX):].strip()
        duration = record.get("duration_ms")
        self.status[str(status)] += 1
        exp = self.correlator.for_request(record.conn, record.get("seq"))
        if exp is not None:
            self._answered(exp, status, duration, down)
        else:
            self.early[(record.conn, record.get("seq"))] = (status, duration, down)
            self.bounds.bound(self.early, 1024)
        path = record.get("path")
        if down is not None:
            self.flag(record.ts, F.INGEST_REJECTED, F.LOST_UPSTREAM_DOWN,
                      f"the server is not running: the sniffer could not reach it ({down}) and "
                      f"answered POST {path} with {status} itself", UPSTREAM_DOWN_HINT, record,
                      dedupe=(F.LOST_UPSTREAM_DOWN,), status=status)
            return
        if isinstance(duration, (int, float)):
            self.latency.add(duration / 1000)
        sent = self.bodies.pop((record.conn, record.get("seq")), None)
        if not 200 <= status < 300:
            seen, hint = self._rejected_because(status, sent)
            self.flag(record.ts, F.INGEST_REJECTED, str(status),
                      f"the server answered POST {path} with {status}"
                      + (f": {str(body)[:200]!r}" if body else "") + seen,
                      hint or ingest_hint(status, path), record,
                      dedupe=(path, status, record.conn), status=status, body=body)
        if isinstance(duration, (int, float)) and duration > self.slow_ms:
            self.flag(record.ts, F.SLOW_INGEST, "slow",
                      f"the server took {duration:.0f} ms to answer POST {path}, above "
                      f"{self.slow_ms:g} ms",
                      f"answer the ingest first and relay in the background: a hook with a "
                      f"{self.slow_ms:g} ms timeout (claude-mpm's fast hook) gives up and the "
                      "event is lost", record, duration_ms=duration, limit_ms=self.slow_ms)

    def _rejected_because(self, status: int,
                          sent: tuple[Any, Any, Any] | None) -> tuple[str, str | None]:
        """What the request itself shows about its rejection: ``(" (fact)", hint)``, or
        ``("", None)`` when it shows nothing (the hint then guesses from the status)."""
        if sent is None:
            return "", None
        size, error, start = sent
        if self.max_body is not None and isinstance(size, int) and size > self.max_body:
            return (f" (the body is {size} bytes, above the server's {self.max_body}-byte limit)",
                    "send smaller events, or raise the server's request size limit (aiohttp: "
                    "web.Application(client_max_size=...))")
        if error and status >= 400:
            return (f" (the body is not JSON: {error}; it starts {start!r})",
                    "fix what the hook sends: the body must be one JSON document")
        return "", None

    def _disowned_again(self, sid: str, first: float) -> bool:
        """Whether ``sid`` was disowned right after its handshake and so was a session opened
        after that (two servers sharing the port do it to fresh sessions again and again)."""
        mine = self.fast_400.get(sid)
        return mine is not None and any(
            opened > first for other, (opened, _) in self.fast_400.items() if other != sid)

    @staticmethod
    def _answered(exp: Expectation, status: int, duration: Any, down: str | None) -> None:
        exp.status = status
        exp.duration_ms = duration
        if down is not None:
            exp.extra["upstream_down"] = down

    def _engineio_http(self, record: Record, status: int) -> None:
        sid = record.eio_sid
        session = self.sessions.get(sid) if sid else None
        if session is not None:
            session.last_request = record.ts
        if sid is None or status < 400:
            return
        body = str(record.get("body") or "")
        req_bytes = record.get("req_bytes")
        # Node answers an oversize POST with 413; python-engineio with a plain 400, which must
        # not pass for an unknown session: the request size against the handshake's maxPayload
        # tells them apart.
        # (python-engineio may have closed the session by the time its answer passes)
        known = self.sessions.known(sid)
        limit = known.max_payload if known is not None else None
        oversize = limit is not None and isinstance(req_bytes, int) and req_bytes > limit
        if status == 413 or (status == 400 and oversize):
            self.flag(record.ts, F.PAYLOAD_TOO_LARGE, f"http_{status}",
                      f"the server refused a {req_bytes}-byte Engine.IO request with {status}"
                      + (f" (maxPayload {limit})" if oversize else ""),
                      "raise the server's max_http_buffer_size / maxHttpBufferSize "
                      "or send smaller events", record, status=status)
            return
        if status != 400:
            return
        session_unknown = "session" in body.lower() or self.sessions.known(sid) is not None
        if record.transport == "websocket" and not session_unknown:
            if session is not None:
                self.liveness.upgrade_failed(session, record.ts,
                                             f"the server answered the WebSocket request with "
                                             f"{status}: {body[:120]!r}", record)
            return
        if not session_unknown:
            return
        if known is not None and known.client_closed is not None \
                and known.client_closed <= record.ts:
            # The client ended the session itself (close packet, or closed its WebSocket): the
            # 400 answers a long-poll still in flight, not a server that forgot the session.
            return
        entry = self.sid400.get(sid)
        if entry is not None:
            entry.count += 1
            return
        known = self.sessions.known(sid)
        self.sid400[sid] = Sid400(first=record.ts, known=known is not None, record=record)
        self.bounds.bound(self.sid400, 1024)
        if known is not None and record.ts - known.opened < FAST_400:
            # Disowned right after its handshake: a restart, or two servers (which do it again
            # to the next fresh session: the judgement waits once more for that to show).
            self.fast_400[sid] = (known.opened, record.ts)
            self.bounds.bound(self.fast_400, 64)
        self.schedule(record.ts + self.config.deadline, "sid400", sid)
        if session is not None:
            self.liveness.close(session, record.ts, REFUSED_400, record)

    def alive_after_400(self, record: Record) -> None:
        """A record of a session in :attr:`sid400`: counts whether the server still serves it."""
        entry = self.sid400[record.eio_sid or ""]
        if record.ts <= entry.first:
            return
        if record.event == model.HTTP and isinstance(record.get("status"), int):
            if record.get("status") == 400:
                return
            entry.alive_after += 1
        elif record.dir == "out" and record.event in (model.EIO_PING, model.SIO_EVENT,
                                                      model.SIO_ACK, model.EIO_PONG):
            entry.alive_after += 1

    def sid400_due(self, sid: str, due: float) -> None:
        entry = self.sid400.get(sid)
        if entry is None:
            return
        judge = self.relay.judge
        twins_known = entry.first - judge.two_servers_at < TWO_SERVERS_MEMORY
        if (sid in self.fast_400 and not entry.deferred and not entry.alive_after
                and not twins_known and not self._disowned_again(sid, entry.first)):
            entry.deferred = True
            self.schedule(due + 2 * self.config.deadline, "sid400", sid)
            return
        del self.sid400[sid]
        session = self.sessions.known(sid)
        who = session.label() if session else sid
        if entry.alive_after:
            code = "two_servers"
            cause = (f"{who}: the server answered 400 (unknown session) {entry.count} time(s) "
                     "while other requests of the same session succeeded: two servers answer "
                     "on this port")
            hint = TWINS_HINT
        elif entry.known and self._disowned_again(sid, entry.first):
            opened = session.opened if session else entry.first
            code = "two_servers"
            cause = (f"{who}: the server answered its handshake and, {entry.first - opened:.2f} s "
                     f"later, did not know the session ({entry.count} time(s) 400); a session "
                     "opened after that was disowned the same way: a restart happens once, so "
                     "two servers answer on this port")
            hint = TWINS_HINT
        elif entry.known and sid in self.fast_400 and twins_known:
            opened = session.opened if session else entry.first
            code = "two_servers"
            cause = (f"{who}: the server answered its handshake and, {entry.first - opened:.2f} s "
                     f"later, did not know the session ({entry.count} time(s) 400), as sessions "
                     "before it: two servers answer on this port")
            hint = TWINS_HINT
        elif entry.known:
            opened = session.opened if session else entry.first
            code = "restarted"
            cause = (f"{who}: the server no longer knows this session (opened "
                     f"{entry.first - opened:.1f} s earlier through this proxy) and answered "
                     f"400 {entry.count} time(s): it restarted, or another server took the port")
            hint = ("the server lost its sessions: the client must reconnect; if it did not "
                    "restart, look for a second server on the same port")
        else:
            code = "unknown"
            cause = (f"{sid}: the server answered 400 for a session it does not know "
                     f"({entry.count} time(s)); the session was opened before the proxy watched")
            hint = ("the server restarted or another server answers on this port: make the "
                    "client reconnect and check for a second server")
        if code == "two_servers":
            judge.two_servers_at = max(judge.two_servers_at, entry.first)
        self.flag(entry.first, F.UNKNOWN_SID, code, cause, hint, entry.record, eio_sid=sid,
                  count=entry.count)
