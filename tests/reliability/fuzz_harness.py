"""A Sniffer in front of a byte-recording upstream, on its own event loop thread, driven with
blocking sockets: what property tests and examples/fuzz.py throw at the running proxy.

Each probe is one TCP connection: it sends bytes, reads until the upstream's answer and the end
of the stream, and returns what the upstream received and what came back, plus the records the
sniffer made for that connection (all of them: the probe waits for its conn.close record).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sio_sniffer.analysis import AnalysisConfig
from sio_sniffer.model import Record
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from tests.reliability.rel_peers import RecordingUpstream, upgrade_request


@dataclass
class Probe:
    conn: str
    sent: bytes  # everything the client wrote, upgrade request included
    upstream_got: bytes
    client_got: bytes
    records: list[Record] = field(default_factory=list)

    def decode_errors(self) -> list[Record]:
        return [r for r in self.records if r.event == "decode_error"]


class FuzzProxy:
    """Start with ``FuzzProxy()`` then ``start()``; ``stop()`` at the end. Not thread-safe:
    one probe at a time (the upstream pairs connections by arrival order)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.upstream = RecordingUpstream()
        self.problems: list[str] = []  # what the sniffer reported on its own (a consumer died)
        self._cond = threading.Condition()
        self._by_conn: dict[str, list[Record]] = {}
        self._closed: set[str] = set()
        self._conn_by_port: dict[int, str] = {}
        self.sniffer: Sniffer | None = None
        self.address: tuple[str, int] = ("127.0.0.1", 0)

    def start(self) -> None:
        self.thread.start()
        self._run(self._start())

    def stop(self) -> None:
        self._run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    async def _start(self) -> None:
        await self.upstream.start()
        config = ProxyConfig(listen=[("127.0.0.1", 0)], upstream=self.upstream.url,
                             analysis=AnalysisConfig())
        self.sniffer = Sniffer(config, sinks=[self._record], report=self.problems.append)
        await self.sniffer.start()
        self.address = self.sniffer.bound[0]

    async def _stop(self) -> None:
        if self.sniffer is not None:
            await self.sniffer.stop()
        await self.upstream.stop()

    def _record(self, record: Record) -> None:
        with self._cond:
            if record.event == "conn.open":
                port = int(str(record.get("peer")).rsplit(":", 1)[1])
                self._conn_by_port[port] = record.conn or ""
            if record.conn is not None:
                self._by_conn.setdefault(record.conn, []).append(record)
            if record.event == "conn.close":
                self._closed.add(record.conn or "")
            self._cond.notify_all()

    def _wait(self, check: Callable[[], bool], what: str, timeout: float = 10) -> None:
        with self._cond:
            if not self._cond.wait_for(check, timeout):
                raise AssertionError(f"timed out waiting for {what}")

    def alive(self) -> bool:
        """Every consumer inside the sniffer is still running (none raised and was cut off)."""
        return not self.problems

    def probe(self, data: bytes, *, upgrade: str | None = None, reply: bytes = b"",
              chunk: int = 0) -> Probe:
        """Send ``data`` (after a WebSocket upgrade to ``upgrade`` when given, the upstream then
        answering ``reply`` after its 101), half-close, read to the end."""
        self.upstream.after_upgrade = reply
        with socket.create_connection(self.address, timeout=10) as sock:
            port = sock.getsockname()[1]
            sent = b""
            got = b""
            if upgrade is not None:
                request, _ = upgrade_request(*self.address, upgrade)
                sock.sendall(request)
                sent += request
                while b"\r\n\r\n" not in got:
                    part = sock.recv(65536)
                    if not part:
                        break
                    got += part
            if chunk:
                for i in range(0, len(data), chunk):
                    sock.sendall(data[i:i + chunk])
            else:
                sock.sendall(data)
            sent += data
            sock.shutdown(socket.SHUT_WR)
            while part := sock.recv(65536):
                got += part
        self._wait(lambda: port in self._conn_by_port, "conn.open")
        conn = self._conn_by_port.pop(port)
        self._wait(lambda: conn in self._closed, f"conn.close of {conn}")
        with self._cond:
            self._closed.discard(conn)
            records = self._by_conn.pop(conn, [])
        # the upstream read the client's end of stream before it closed, and the client saw
        # that close: its buffer, the newest one, is complete
        return Probe(conn, sent, bytes(self.upstream.by_order.pop()), got, records)
