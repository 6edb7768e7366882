"""The judge in generic mode (no profile, no rules): events that go in and never come out.

Real python-socketio servers, each broken in one way, behind a real Sniffer; python-socketio
clients send on ``/hook`` and listen as dashboards. Every broken case must name the cause the
traffic shows, and its healthy twin must raise no flag at all. Deadlines are 1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import socketio
from aiohttp import web

from sio_sniffer import model
from sio_sniffer.model import Record
from sio_sniffer.model import flags as F
from sio_sniffer.pipeline.sniffer import Sniffer
from sio_sniffer.testing import Recorder
from tests.rigs import generic, judging

TIMEOUT = 10.0
DEADLINE = 1.0
Setup = Callable[[socketio.AsyncServer, web.Application], None]


class Client:
    """A python-socketio client on one namespace that queues what it receives."""

    def __init__(self, url: str, nsp: str) -> None:
        self.url = url
        self.nsp = nsp
        self.sio = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.sid = ""

        async def any_event(name: str, *args: Any) -> None:
            await self.events.put((name, args[0] if args else None))

        self.sio.on("*", any_event, namespace=nsp)

    async def __aenter__(self) -> Client:
        await self.sio.connect(self.url, namespaces=[self.nsp], transports=["websocket"],
                               wait_timeout=5)
        self.sid = str(self.sio.eio.sid)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.sio.disconnect()

    async def emit(self, name: str, data: Any) -> None:
        await self.sio.emit(name, data, namespace=self.nsp)

    async def receive(self, name: str) -> Any:
        while True:
            got, data = await asyncio.wait_for(self.events.get(), TIMEOUT)
            if got == name:
                return data


@contextlib.asynccontextmanager
async def judged(py_server_factory: Any, setup: Setup) -> AsyncIterator[tuple[Sniffer, Recorder]]:
    """A server built by ``setup`` behind a sniffer judging without profile or rules."""
    server = await py_server_factory(setup, namespaces="*")
    async with judging(server.url, generic(DEADLINE)) as rig:
        yield rig


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {"tool": "Bash", "correlation_id": f"x-{n}", "command": f"make test-{n}", **extra}


def relay(to_nsp: str = "/", *, room: str | None = None, drop: tuple[int, ...] = (),
          reshape: Callable[[dict[str, Any]], Any] | None = None,
          to_sender: bool = False) -> Setup:
    """Relays ``tool_event`` from ``/hook``: to ``to_nsp`` (or a room there, or back to the
    sender), skipping the events numbered in ``drop``, reshaped by ``reshape``."""

    def setup(sio: socketio.AsyncServer, app: web.Application) -> None:
        count = 0

        @sio.on("tool_event", namespace="/hook")
        async def tool_event(sid: str, data: dict[str, Any]) -> None:
            nonlocal count
            count += 1
            if count in drop:
                return
            out = reshape(data) if reshape else data
            if to_sender:
                await sio.emit("tool_event", out, to=sid, namespace="/hook")
            else:
                await sio.emit("tool_event", out, namespace=to_nsp, room=room)

    return setup


def lost(rec: Recorder) -> list[Record]:
    return rec.flags(F.LOST)


def all_flags(rec: Recorder) -> list[tuple[Any, Any, Any]]:
    return [(r.get("flag"), r.get("code"), r.get("cause")) for r in rec.of(model.FLAG)]


async def past_deadline(rec: Recorder, record: Record) -> None:
    """Until the sniffer has heard a record (a heartbeat: pings come every second) stamped after
    ``record``'s deadline, so its expectation has been judged."""
    await rec.wait_for(lambda r: r.ts > record.ts + DEADLINE + 0.05, timeout=TIMEOUT)


async def healthy_end(sniffer: Sniffer, rec: Recorder) -> dict[str, Any]:
    """Past the deadline of the last event that came in, then stopped: no flag, nothing left
    unjudged."""
    last_in = [r for r in rec.of(model.SIO_EVENT) if r.dir == "in"][-1]
    await past_deadline(rec, last_in)
    await sniffer.stop()
    assert all_flags(rec) == []
    [summary] = rec.of(model.SUMMARY)
    assert summary.get("expectations")["open_at_exit"] == 0
    return dict(summary.extra)




async def test_1_relay_to_a_namespace_nobody_is_on(py_server_factory: Any) -> None:
    """Relayed to ``/`` while the only dashboard is on ``/dash``: never_relayed, while running,
    once for the event kind (from its second event on: one may be a request the server only
    consumes), naming where the clients were."""
    async with judged(py_server_factory, relay("/")) as (sniffer, rec), \
            Client(sniffer.url, "/dash") as board, Client(sniffer.url, "/hook") as hook:
        for n in (1, 2, 3):
            await hook.emit("tool_event", event(n))
        flag = await rec.wait_flag(F.NEVER_RELAYED)
    assert flag.get("code") == F.NEVER_RELAYED_NOBODY_RECEIVED
    assert flag.nsp == "/hook" and flag.name == "tool_event"
    cause = str(flag.get("cause"))
    assert board.sid in cause and "/dash" in cause and "sent them nothing" in cause
    hint = str(flag.get("hint"))
    assert hint.index("namespace") < hint.index("room") < hint.index("handler")
    assert "diagnose" in hint and "--rules" in hint
    assert flag.get("clients") == [f"{board.sid} /dash"]
    # One flag for the kind; the repeats are counted, not flagged again.
    assert len(rec.flags(F.NEVER_RELAYED)) == 1
    [summary] = rec.of(model.SUMMARY)
    assert summary.get("expectations")["never_relayed"] == {"/hook tool_event": 3}
    assert lost(rec) == []


async def test_1_relay_to_a_room_nobody_joined(py_server_factory: Any) -> None:
    """The dashboard is on ``/`` but the server emits to a room it never joined."""
    async with judged(py_server_factory, relay("/", room="watchers")) as (sniffer, rec), \
            Client(sniffer.url, "/") as board, Client(sniffer.url, "/hook") as hook:
        await hook.emit("tool_event", event(1))
        await hook.emit("tool_event", event(2))
        flag = await rec.wait_flag(F.NEVER_RELAYED)
    assert f"{board.sid} on /" in str(flag.get("cause"))
    assert flag.get("clients") == [f"{board.sid} /"]


async def test_1_nobody_else_connected(py_server_factory: Any) -> None:
    async with judged(py_server_factory, relay("/")) as (sniffer, rec), \
            Client(sniffer.url, "/hook") as hook:
        await hook.emit("tool_event", event(1))
        await hook.emit("tool_event", event(2))
        flag = await rec.wait_flag(F.NEVER_RELAYED)
    assert flag.get("code") == F.NEVER_RELAYED_NOBODY_ELSE
    assert "no other client was connected" in str(flag.get("cause"))


def answering_server(sio: socketio.AsyncServer, app: web.Application) -> None:
    """Healthy: a ``join`` is acknowledged and answered to its sender; the server broadcasts
    ``status`` (another event) to everyone on ``/``."""

    @sio.on("join", namespace="/hook")
    async def join(sid: str, data: dict[str, Any]) -> dict[str, Any]:
        await sio.emit("joined", {"room": data["room"], "members": 2}, to=sid, namespace="/hook")
        await sio.emit("status", {"clients": 2, "rooms": [data["room"]]}, namespace="/")
        return {"ok": True}

    @sio.on("subscribe", namespace="/hook")
    async def subscribe(sid: str, data: dict[str, Any]) -> None:
        await sio.emit("status", {"clients": 2, "topic": data["topic"]}, namespace="/")


async def test_1_healthy_single_request_nothing_follows(py_server_factory: Any) -> None:
    """One ``join`` the server consumes without a word, a dashboard connected: no flag."""
    async with judged(py_server_factory, relay("/", drop=(1,))) as (sniffer, rec), \
            Client(sniffer.url, "/"), Client(sniffer.url, "/hook") as hook:
        await hook.emit("tool_event", event(1))
        await rec.wait(model.SIO_EVENT, name="tool_event")
        summary = await healthy_end(sniffer, rec)
    assert summary["expectations"]["client_events_never_relayed"] == {"/hook tool_event": 1}


async def test_1_healthy_requests_answered_not_relayed(py_server_factory: Any) -> None:
    async with judged(py_server_factory, answering_server) as (sniffer, rec), \
            Client(sniffer.url, "/") as board, Client(sniffer.url, "/hook") as hook:
        for n in range(3):
            assert await hook.sio.call("join", {"room": f"room-{n}"}, namespace="/hook") \
                == {"ok": True}
            await board.receive("status")
            await hook.emit("subscribe", {"topic": f"topic-number-{n}"})
            await board.receive("status")
        await healthy_end(sniffer, rec)




async def test_2_relay_drops_one_of_three(py_server_factory: Any) -> None:
    """The kind came out on ``/`` before, the dashboard is there: "the server did not emit it"."""
    async with judged(py_server_factory, relay("/", drop=(2,))) as (sniffer, rec), \
            Client(sniffer.url, "/") as board, Client(sniffer.url, "/hook") as hook:
        await hook.emit("tool_event", event(1))
        assert (await board.receive("tool_event"))["correlation_id"] == "x-1"
        await hook.emit("tool_event", event(2))
        await hook.emit("tool_event", event(3))
        assert (await board.receive("tool_event"))["correlation_id"] == "x-3"
        flag = await rec.wait_flag(F.LOST)
    assert flag.get("code") == F.LOST_NOT_EMITTED
    assert flag.get("expected_nsp") == "/"
    cause = str(flag.get("cause"))
    assert "did not emit" in cause and board.sid in cause
    assert "x-2" in cause or "x-2" in str(flag.get("missing"))
    assert "no client" not in cause
    assert [f.get("code") for f in lost(rec)] == [F.LOST_NOT_EMITTED]


async def test_2_healthy_relay_of_three(py_server_factory: Any) -> None:
    async with judged(py_server_factory, relay("/")) as (sniffer, rec), \
            Client(sniffer.url, "/") as board, Client(sniffer.url, "/hook") as hook:
        for n in (1, 2, 3):
            await hook.emit("tool_event", event(n))
            assert (await board.receive("tool_event"))["correlation_id"] == f"x-{n}"
        summary = await healthy_end(sniffer, rec)
    assert summary["expectations"]["matched"] == 3




async def test_3_a_dropped_event_is_not_a_changed_one(py_server_factory: Any) -> None:
    """x-2 dropped, x-3 relayed: x-3 resembles x-2 but its ids differ: not emitted."""
    async with judged(py_server_factory, relay("/", drop=(2,))) as (sniffer, rec), \
            Client(sniffer.url, "/") as board, Client(sniffer.url, "/hook") as hook:
        await hook.emit("tool_event", event(1, session="s-1"))
        await board.receive("tool_event")
        await hook.emit("tool_event", event(2, session="s-1"))
        await hook.emit("tool_event", event(3, session="s-1"))
        await board.receive("tool_event")
        flag = await rec.wait_flag(F.LOST)
    assert flag.get("code") == F.LOST_NOT_EMITTED, flag.get("cause")
    assert "became" not in str(flag.get("cause"))


async def test_3_a_reshaped_event_names_what_differs(py_server_factory: Any) -> None:
    """The relay drops a field of every event: emitted_other, naming the missing field."""

    def strip(data: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in data.items() if k != "command"}

    async with judged(py_server_factory, relay("/", reshape=strip)) as (sniffer, rec), \
            Client(sniffer.url, "/") as board, Client(sniffer.url, "/hook") as hook:
        await hook.emit("tool_event", event(1))
        await board.receive("tool_event")
        flag = await rec.wait_flag(F.LOST)
    assert flag.get("code") == F.LOST_EMITTED_OTHER
    assert "command" in str(flag.get("cause"))
    assert rec.flags(F.NEVER_RELAYED) == []




async def test_4_echo_to_the_sender_only(py_server_factory: Any) -> None:
    async with judged(py_server_factory, relay(to_sender=True)) as (sniffer, rec), \
            Client(sniffer.url, "/") as board, Client(sniffer.url, "/hook") as hook:
        await hook.emit("tool_event", event(1))
        await hook.receive("tool_event")
        flag = await rec.wait_flag(F.LOST)
    assert flag.get("code") == F.LOST_ECHO_ONLY
    cause = str(flag.get("cause"))
    assert "only back to its sender" in cause and f"{board.sid} on /" in cause
    assert rec.flags(F.NEVER_RELAYED) == []


def ping_server(sio: socketio.AsyncServer, app: web.Application) -> None:
    """Healthy request/answer: ``ping`` is answered with ``pong`` to its sender only."""

    @sio.on("ping", namespace="/hook")
    async def ping(sid: str, data: dict[str, Any]) -> None:
        await sio.emit("pong", {"sent": data["sent"], "server": "pong-answer"}, to=sid,
                       namespace="/hook")


async def test_4_healthy_request_answered_to_the_sender(py_server_factory: Any) -> None:
    async with judged(py_server_factory, ping_server) as (sniffer, rec), \
            Client(sniffer.url, "/") as board, Client(sniffer.url, "/hook") as hook:
        for n in range(3):
            await hook.emit("ping", {"sent": f"ping-number-{n}"})
            assert (await hook.receive("pong"))["sent"] == f"ping-number-{n}"
        assert board.events.empty()
        await healthy_end(sniffer, rec)


async def test_4_healthy_echo_with_nobody_else(py_server_factory: Any) -> None:
    """An echo server with a single client (the socket.io test suites' echo) is healthy."""
    async with judged(py_server_factory, relay(to_sender=True)) as (sniffer, rec), \
            Client(sniffer.url, "/hook") as hook:
        for n in (1, 2):
            await hook.emit("tool_event", event(n))
            await hook.receive("tool_event")
        await healthy_end(sniffer, rec)
