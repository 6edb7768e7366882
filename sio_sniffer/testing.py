"""Public helpers for tests of sio-sniffer and of apps behind it, as ``structlog.testing`` is.

- :func:`free_port`: a free loopback TCP port.
- :class:`Recorder`: a record sink a test awaits (``await recorder.wait(model.FLAG, flag=...)``).
- :func:`records`: a synthetic mix of pipeline records for load and memory checks of the
  analysis. Clients come and go under fresh sids, hook POSTs are relayed to three clients (one
  in fifty is never relayed, so lost flags flow), client requests are acknowledged, heartbeats
  tick. The test suite and ``examples/analysis_memory.py`` use it to show that the analyzer's
  memory stays flat.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from typing import Any

from sio_sniffer import model
from sio_sniffer.model import Record

T0 = 1_700_000_000.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS may hand it out again later)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Recorder:
    """A record sink a test can await: ``await recorder.wait(kind, **fields)``; ``records`` holds
    every record heard, in order."""

    def __init__(self) -> None:
        self.records: list[Record] = []
        self._waiters: list[tuple[Callable[[Record], bool], asyncio.Future[Record]]] = []

    def __call__(self, record: Record) -> None:
        self.records.append(record)
        for check, fut in list(self._waiters):
            if not fut.done() and check(record):
                fut.set_result(record)
                self._waiters.remove((check, fut))

    def of(self, kind: str, **fields: Any) -> list[Record]:
        return [r for r in self.records if r.event == kind and _matches(r, fields)]

    def flags(self, flag: str) -> list[Record]:
        return [r for r in self.records if r.event == "flag" and r.get("flag") == flag]

    async def wait(self, kind: str, timeout: float = 10, **fields: Any) -> Record:
        """The first record of ``kind`` whose fields (or extra keys) equal ``fields``."""

        return await self.wait_for(lambda r: r.event == kind and _matches(r, fields), timeout)

    async def wait_for(self, check: Callable[[Record], bool], timeout: float = 10) -> Record:
        """The first record, heard already or to come, for which ``check`` is true."""
        for record in self.records:
            if check(record):
                return record
        fut: asyncio.Future[Record] = asyncio.get_running_loop().create_future()
        self._waiters.append((check, fut))
        return await asyncio.wait_for(fut, timeout)

    async def wait_flag(self, flag: str, timeout: float = 10) -> Record:
        """The first flag of kind ``flag``; on timeout the failure lists the flags raised."""
        try:
            return await self.wait("flag", timeout, flag=flag)
        except asyncio.TimeoutError:
            seen = [(r.get("flag"), r.get("code"), r.get("cause")) for r in self.of("flag")]
            raise AssertionError(f"no {flag} flag within {timeout} s; flags: {seen}") from None

    async def wait_count(self, kind: str, n: int, timeout: float = 10) -> list[Record]:
        """Wait until ``n`` records of ``kind`` have arrived."""
        seen = len(self.of(kind))

        def check(r: Record) -> bool:
            nonlocal seen
            seen += r.event == kind
            return seen >= n

        if seen < n:
            fut: asyncio.Future[Record] = asyncio.get_running_loop().create_future()
            self._waiters.append((check, fut))
            await asyncio.wait_for(fut, timeout)
        return self.of(kind)


def _matches(record: Record, fields: dict[str, Any]) -> bool:
    for key, want in fields.items():
        have = getattr(record, key) if key in Record.__dataclass_fields__ else record.get(key)
        if have != want:
            return False
    return True


def records(count: int, clients: int = 20, step: float = 0.0005) -> Iterator[Record]:
    """``count`` rounds of records, ``step`` seconds apart; clients reconnect now and then."""
    t = T0
    n = 0
    generation = [0] * clients
    for i in range(clients):
        yield from _connect(t, i, 0)
    while n < count:
        t += step
        k = n % 10
        client = n % clients
        sid = f"s{client}-{generation[client]}"
        if k < 3:
            hook: dict[str, Any] = {"tool": "Bash", "n": n, "cmd": f"echo {n}"}
            body = {"event": "claude_event",
                    "data": {"subtype": "pre_tool", "session_id": f"sess{n}", "data": hook}}
            yield Record(model.HTTP_REQUEST, t, conn=f"h{n}", args=body,
                         extra={"method": "POST", "path": "/api/events", "seq": 1,
                                "peer": f"127.0.0.1:{n % 60000}", "user_agent": "hook",
                                "body_size": 200})
            yield Record(model.HTTP, t, conn=f"h{n}",
                         extra={"method": "POST", "path": "/api/events", "status": 204,
                                "duration_ms": 2.0, "seq": 1, "engineio": False})
            if n % 50:  # one POST in fifty is never relayed: a lost flag each
                for c in range(3):
                    yield Record(model.SIO_EVENT, t, eio_sid=f"s{c}-{generation[c]}", nsp="/",
                                 dir="out", name="tool_event", size=120,
                                 args=[{"subtype": "pre_tool", "data": hook}])
        elif k == 3:
            yield Record(model.SIO_EVENT, t, eio_sid=sid, nsp="/", dir="in", name="get",
                         ack_id=n, args=[{"page": n}], size=20)
            yield Record(model.SIO_ACK, t, eio_sid=sid, nsp="/", dir="out", ack_id=n,
                         args=[[1, 2]])
        elif k == 4:
            pinged = (n // 10) % clients
            psid = f"s{pinged}-{generation[pinged]}"
            yield Record(model.EIO_PING, t, eio_sid=psid, dir="out")
            yield Record(model.EIO_PONG, t, eio_sid=psid, dir="in")
        elif k == 5 and n % 1000 == 5:
            yield Record(model.EIO_CLOSE, t, eio_sid=sid, extra={"reason": "gone"})
            generation[client] += 1
            yield from _connect(t, client, generation[client])
        else:
            yield Record(model.SIO_EVENT, t, eio_sid=sid, nsp="/", dir="out", name="tick",
                         args=[{"n": n}], size=12)
        n += 1


def _connect(t: float, client: int, generation: int) -> Iterator[Record]:
    sid = f"s{client}-{generation}"
    extra: dict[str, Any] = {"eio": 4, "ping_interval": 25000, "ping_timeout": 20000,
                             "max_payload": 1000000, "user_agent": "dash", "peer": "127.0.0.1:1"}
    yield Record(model.EIO_OPEN, t, conn=f"c{sid}", eio_sid=sid, transport="websocket",
                 dir="out", extra=extra)
    yield Record(model.SIO_CONNECT, t, conn=f"c{sid}", eio_sid=sid, nsp="/", dir="in",
                 extra={"auth": None})
    yield Record(model.SIO_CONNECT_OK, t, conn=f"c{sid}", eio_sid=sid, nsp="/", dir="out",
                 sio_sid=f"x{sid}")
