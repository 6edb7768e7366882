"""Running the replay: one python-socketio client per captured session, and the HTTP steps."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
import socketio

from sio_sniffer.replay.diff import ReplayResult, diff
from sio_sniffer.replay.noise import Place, unstable_places
from sio_sniffer.replay.script import ClientScript, Observed, Script, Step
from sio_sniffer.support.progress import ProgressBar

# How long a CONNECT (the first, or a later namespace's) may wait for the server's answer.
CONNECT_TIMEOUT = 10.0
HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding",
                         "keep-alive", "upgrade", "te", "trailer", "proxy-connection"})


class _LiveClient:
    def __init__(self, script: ClientScript, auth: Any, on_receive: Callable[[], None]) -> None:
        self.script = script
        self.auth = auth
        self.received: list[Observed] = []
        self.client = socketio.AsyncClient(reconnection=False)
        self._on_receive = on_receive
        self._seen: Counter[tuple[str, str]] = Counter()
        self.sids: dict[str, str] = {}
        # Namespaces answered (accepted or refused): what a later join waits for.
        self._answered: dict[str, asyncio.Event] = {}
        self.client.on("*", self._event, namespace="*")
        self.client.on("connect", self._connected, namespace="*")
        self.client.on("connect_error", self._connect_error, namespace="*")

    def _store(self, obs: Observed) -> None:
        self.received.append(obs)
        self._on_receive()

    async def _event(self, event: str, namespace: str, *args: Any) -> Any:
        self._store(Observed("event", namespace, event, list(args), time.time()))
        nth = self._seen[(namespace, event)]
        self._seen[(namespace, event)] += 1
        reply = self.script.replies.get((namespace, event, nth))
        return tuple(reply) if reply is not None else None

    async def _connected(self, namespace: str) -> None:
        self._answered.setdefault(namespace, asyncio.Event()).set()

    async def _connect_error(self, namespace: str, data: Any = None) -> None:
        message = data.get("message") if isinstance(data, dict) else data
        self._store(Observed("connect_error", namespace, "", [message], time.time()))
        self._answered.setdefault(namespace, asyncio.Event()).set()

    async def connect(self, target: str, path: str) -> None:
        await self.client.connect(
            target, namespaces=list(self.script.first_namespaces), auth=self.auth,
            transports=list(self.script.transports), socketio_path=path,
            headers=dict(self.script.headers), wait_timeout=CONNECT_TIMEOUT)
        # Taken now: a disconnected client no longer knows its sids.
        self.sids = self._sid_map()

    async def join(self, nsp: str) -> None:
        """Connect one more namespace on the same Engine.IO session, as the captured client
        did after its first connect. python-socketio's client has no call for that (it
        connects its namespaces at once), so the CONNECT packet is sent on its Engine.IO
        client, as its own connect does; its packet handling then takes the answer."""
        answered = self._answered.setdefault(nsp, asyncio.Event())
        pkt = socketio.packet.Packet(socketio.packet.CONNECT, data=self.auth, namespace=nsp)
        await self.client.eio.send(pkt.encode())
        try:
            await asyncio.wait_for(answered.wait(), CONNECT_TIMEOUT)
        except asyncio.TimeoutError:
            raise socketio.exceptions.ConnectionError(
                f"no answer to CONNECT {nsp} within {CONNECT_TIMEOUT:g} s") from None
        self.sids = self._sid_map()

    async def emit(self, step: Step) -> None:
        data: Any = step.args if step.args else None
        if not step.ack:
            await self.client.emit(step.name, data, namespace=step.nsp)
            return

        def on_ack(*args: Any) -> None:
            self._store(Observed("ack", step.nsp, step.name, list(args), time.time()))

        await self.client.emit(step.name, data, namespace=step.nsp, callback=on_ack)

    def _sid_map(self) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.client.eio.sid:
            out[self.script.eio_sid] = self.client.eio.sid
        for nsp, old in self.script.sio_sids.items():
            new = self.client.get_sid(nsp)
            if new:
                out[old] = new
        return out


async def replay(script: Script, target: str, *, speed: float | None = 1.0,
                 auth: Any = None, ignore: Iterable[str] = (), strict: bool = False,
                 twice: bool = False, path: str = "/socket.io/", settle: float = 1.0,
                 progress: ProgressBar | None = None) -> ReplayResult:
    """Run the script against ``target``; ``speed=None`` means as fast as possible.

    ``strict`` compares every value (no noise rules); ``twice`` runs the script twice and takes
    what differed between the two runs for noise in the comparison of the second with the
    capture.
    """
    unstable: set[Place] = set()
    if twice:
        # The first run only shows what the server varies by itself; the second is the one
        # compared with the capture.
        first, _, first_errors = await _run(script, target, speed, auth, path, settle,
                                            progress)
        live, http_actual, errors = await _run(script, target, speed, auth, path, settle,
                                               progress)
        errors = [f"first replay: {e}" for e in first_errors] + errors
        for cid, lc in live.items():
            unstable |= unstable_places(first[cid].received, lc.received)
    else:
        live, http_actual, errors = await _run(script, target, speed, auth, path, settle,
                                               progress)
    ignore_set = frozenset(ignore)
    sid_map: dict[str, str] = {}
    for lc in live.values():
        sid_map.update(lc.sids)
    compared = {cid: diff(lc.script.expected, lc.received, ignore_set, sid_map, strict=strict,
                          unstable=frozenset(unstable))
                for cid, lc in live.items()}
    actual = {cid: lc.received for cid, lc in live.items()}
    if script.http_expected or http_actual:
        compared["http"] = diff(script.http_expected, http_actual, ignore_set, {}, strict=True)
        actual["http"] = http_actual
    return ReplayResult({cid: c.differences for cid, c in compared.items()}, actual, errors,
                        {cid: c.noise for cid, c in compared.items()})


async def _run(script: Script, target: str, speed: float | None, auth: Any, path: str,
               settle: float, progress: ProgressBar | None
               ) -> tuple[dict[str, _LiveClient], list[Observed], list[str]]:
    """One run of the script: the live clients (with what they received), the HTTP statuses,
    the errors."""
    arrived = asyncio.Event()
    live: dict[str, _LiveClient] = {}
    errors: list[str] = []
    http_actual: list[Observed] = []
    for cid, cs in script.clients.items():
        live[cid] = _LiveClient(cs, auth if auth is not None else cs.auth, arrived.set)
    start = time.monotonic()
    t0 = script.steps[0].ts if script.steps else 0.0
    sock_path = path.strip("/")
    barriers = _barriers(script)
    behind: Counter[str] = Counter()
    async with aiohttp.ClientSession() as http:
        for step, needs in zip(script.steps, barriers, strict=True):
            if speed is not None:
                delay = start + (step.ts - t0) / speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await _wait_for(live, needs, behind, arrived, settle)
            try:
                await _run_step(step, live, http, target, sock_path, http_actual)
            except (socketio.exceptions.SocketIOError, aiohttp.ClientError, OSError) as exc:
                errors.append(f"{step.kind} {step.name or step.nsp} for client "
                              f"{step.client or '-'}: {exc}")
            if progress is not None:
                progress.step(f"{step.kind} {step.name}")
        await _settle(live, arrived, settle)
        for lc in live.values():
            if lc.client.connected:
                await lc.client.disconnect()
    return live, http_actual, errors


async def _run_step(step: Step, live: dict[str, _LiveClient], http: aiohttp.ClientSession,
                    target: str, sock_path: str, http_actual: list[Observed]) -> None:
    if step.kind == "http":
        assert step.request is not None
        req = step.request
        headers = {k: v for k, v in req.headers
                   if k.lower() not in HOP_HEADERS and not v.startswith("sha256:")}
        async with http.request(req.method, target.rstrip("/") + req.target, data=req.body,
                                headers=headers) as resp:
            await resp.read()
        path = req.target.split("?", 1)[0]
        http_actual.append(Observed("http", "", f"{req.method} {path}", [resp.status],
                                time.time()))
        return
    lc = live[str(step.client)]
    if step.kind == "connect":
        await lc.connect(target, sock_path)
    elif step.kind == "join":
        if lc.client.connected:
            await lc.join(step.nsp)
    elif step.kind == "emit":
        if lc.client.connected:
            await lc.emit(step)
    elif step.kind == "disconnect" and lc.client.connected:
        await lc.client.disconnect()


def _barriers(script: Script) -> list[dict[str, int]]:
    """Per step: how many items each client had received before it in the capture.

    A step waits for those (an emit sent after an ack came back, a hook POST after the answer
    to the previous one), so the replay keeps the capture's causality even at full speed.
    """
    out = []
    for step in script.steps:
        out.append({cid: sum(1 for o in c.expected if o.ts < step.ts)
                     for cid, c in script.clients.items()})
    return out


async def _wait_for(live: dict[str, _LiveClient], needs: dict[str, int], behind: Counter[str],
                    arrived: asyncio.Event, timeout: float) -> None:
    """Wait until each client has its captured count (minus what it already fell behind)."""
    def short() -> list[str]:
        return [cid for cid, n in needs.items()
                if live[cid].client.connected and len(live[cid].received) < n - behind[cid]]

    deadline = time.monotonic() + timeout
    while short():
        arrived.clear()
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise asyncio.TimeoutError
            await asyncio.wait_for(arrived.wait(), remaining)
        except asyncio.TimeoutError:
            # The server is not sending what it sent in the capture: go on, and do not wait
            # for those items again (the diff will name them).
            for cid in short():
                behind[cid] = needs[cid] - len(live[cid].received)
            return


async def _settle(live: dict[str, _LiveClient], arrived: asyncio.Event, settle: float) -> None:
    """Wait until every client got what it got in the capture, or nothing arrived for a while."""
    while True:
        if all(len(lc.received) >= len(lc.script.expected) for lc in live.values()):
            # Give stragglers (extra events) one short chance before comparing.
            settle = min(settle, 0.2)
        arrived.clear()
        try:
            await asyncio.wait_for(arrived.wait(), settle)
        except asyncio.TimeoutError:
            return
