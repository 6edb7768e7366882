"""A small transcript DSL for analysis unit tests: writes the Records the pipeline would produce.

Each helper appends records at the current time ``t`` (advanced with :meth:`Wire.wait`) and
feeds them to a real :class:`Analyzer`; what it emits is collected in ``out``.
"""

from __future__ import annotations

import itertools
from typing import Any

from sio_sniffer import model
from sio_sniffer.analysis import AnalysisConfig, Analyzer
from sio_sniffer.model import Record

T0 = 1_700_000_000.0


class Wire:
    def __init__(self, config: AnalysisConfig | None = None) -> None:
        self.out: list[Record] = []
        self.analyzer = Analyzer(config or AnalysisConfig(), self.out.append)
        self.t = T0
        self._conn = itertools.count(1)
        self._seq = itertools.count(1)

    def wait(self, seconds: float) -> None:
        self.t += seconds
        self.analyzer.tick(self.t)

    def feed(self, event: str, **fields: Any) -> Record:
        record = Record(event=event, ts=self.t, **fields)
        self.analyzer.feed(record)
        return record

    def flags(self, kind: str | None = None) -> list[Record]:
        return [r for r in self.out if r.event == model.FLAG and (kind is None
                                                                   or r.get("flag") == kind)]

    def records(self, event: str) -> list[Record]:
        return [r for r in self.out if r.event == event]

    def client(self, sid: str, nsp: str | None = "/", transport: str = "websocket",
               user_agent: str = "python-requests/2.31", auth: str | None = None,
               ping_interval: int = 25000, ping_timeout: int = 20000,
               max_payload: int = 1_000_000, eio: int = 4, answer: bool = True) -> str:
        """Open an Engine.IO session and (optionally) connect it to ``nsp``."""
        conn = f"c{next(self._conn)}"
        self.feed(model.EIO_OPEN, conn=conn, eio_sid=sid, transport=transport, dir="out",
                  extra={"eio": eio, "upgrades": [], "ping_interval": ping_interval,
                         "ping_timeout": ping_timeout, "max_payload": max_payload,
                         "user_agent": user_agent, "peer": f"127.0.0.1:{40000 + len(sid)}"})
        if nsp is not None:
            self.feed(model.SIO_CONNECT, conn=conn, eio_sid=sid, nsp=nsp, dir="in",
                      extra={"auth": auth, "auth_keys": ["token"] if auth else []})
            if answer:
                self.feed(model.SIO_CONNECT_OK, conn=conn, eio_sid=sid, nsp=nsp, dir="out",
                          sio_sid=f"S{sid}")
        return conn

    def refused(self, sid: str, nsp: str, message: str = "Unable to connect") -> None:
        conn = f"c{next(self._conn)}"
        self.feed(model.EIO_OPEN, conn=conn, eio_sid=sid, transport="websocket", dir="out",
                  extra={"eio": 4, "ping_interval": 25000, "ping_timeout": 20000})
        self.feed(model.SIO_CONNECT, conn=conn, eio_sid=sid, nsp=nsp, dir="in",
                  extra={"auth": None})
        self.feed(model.SIO_CONNECT_ERROR, conn=conn, eio_sid=sid, nsp=nsp, dir="out",
                  extra={"message": message})

    def close(self, sid: str) -> None:
        self.feed(model.EIO_CLOSE, eio_sid=sid, extra={"reason": "transport closed"})

    def out_event(self, sid: str, name: str, args: list[Any], nsp: str = "/",
                  ack_id: int | None = None) -> Record:
        return self.feed(model.SIO_EVENT, eio_sid=sid, nsp=nsp, dir="out", name=name,
                         args=args, ack_id=ack_id, size=len(repr(args)))

    def in_event(self, sid: str, name: str, args: list[Any], nsp: str = "/",
                 ack_id: int | None = None) -> Record:
        return self.feed(model.SIO_EVENT, eio_sid=sid, nsp=nsp, dir="in", name=name,
                         args=args, ack_id=ack_id, size=len(repr(args)))

    def broadcast(self, sids: list[str], name: str, args: list[Any], nsp: str = "/") -> None:
        for sid in sids:
            self.out_event(sid, name, args, nsp)
            self.t += 0.001

    def post(self, body: Any, status: int = 204, duration_ms: float = 3.0,
             path: str = "/api/events", body_size: int | None = None) -> tuple[str, int]:
        """A hook POST and its answer (the ``http`` record comes ``duration_ms`` later)."""
        conn = f"h{next(self._conn)}"
        seq = next(self._seq)
        self.feed(model.HTTP_REQUEST, conn=conn, args=body,
                  extra={"method": "POST", "path": path, "seq": seq, "peer": "127.0.0.1:5000",
                         "user_agent": "claude-hook/1", "content_type": "application/json",
                         "body_size": body_size if body_size is not None else len(repr(body))})
        self.answer(conn, seq, status, duration_ms, path)
        return conn, seq

    def answer(self, conn: str, seq: int, status: int, duration_ms: float,
               path: str = "/api/events") -> None:
        self.t += duration_ms / 1000
        self.feed(model.HTTP, conn=conn,
                  extra={"method": "POST", "path": path, "status": status, "bytes": 0,
                         "duration_ms": duration_ms, "seq": seq, "engineio": False,
                         "body": "" if status < 400 else "500 Internal Server Error"})


def hook_body(subtype: str = "pre_tool", n: int = 1, **inner: Any) -> dict[str, Any]:
    """A claude-mpm hook POST body: the hook dict is nested two levels down."""
    data = {"tool_name": "Bash", "tool_input": {"command": f"ls -la /tmp/{n}"}, **inner}
    return {"namespace": "", "event": "claude_event",
            "data": {"type": "hook", "subtype": subtype, "data": data,
                     "session_id": f"sess-{n:04d}", "correlation_id": f"corr-{n:06d}",
                     "cwd": "/home/user/project", "timestamp": f"2025-01-01T00:00:{n:02d}Z",
                     "source": "claude-hook"}}


def relayed(body: dict[str, Any], drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """What claude-mpm emits for a hook body: unwrapped, re-normalized, ``drop`` fields removed."""
    inner = body["data"]
    out = {"type": inner["type"], "subtype": inner["subtype"], "data": inner["data"],
           "timestamp": inner["timestamp"], "session_id": inner["session_id"],
           "source": inner["source"], "correlation_id": inner["correlation_id"],
           "cwd": inner["cwd"]}
    for key in drop:
        out.pop(key, None)
    return out
