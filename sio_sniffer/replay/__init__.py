"""Replay a capture: re-drive the captured clients against a live server, or play the server side.

``replay FILE --target URL`` runs the capture through the same pipeline as the live proxy, turns
each captured Engine.IO session into a script (namespaces, auth, client emits with or without
acks, answers to server acks) and each non-Engine.IO request (hook POSTs) into an HTTP step, and
plays all of them in their captured order with the original timing scaled by ``--speed``. One
python-socketio ``AsyncClient`` per captured session; it answers pings itself. Then, per
captured client, the events (and acks) the server sent in the capture are compared with those it
sent in the replay: missing, extra, changed. Captured sids that appear in payloads are replaced
by the replay's sids before comparing, and the values of the ``--ignore`` keys (ids and times by
default) are not compared.

Auth: a capture written without ``--show-secrets`` holds only fingerprints of the CONNECT auth,
so such a replay needs ``--auth JSON`` from the user; with secrets, the captured auth is reused.

``replay FILE --serve --listen HOST:PORT`` is the other direction: a python-socketio server
that, to every client that connects to a namespace, emits what the captured server sent to one
captured client on that namespace, in order and with the captured timing, and answers client
emits with the captured acks. A dashboard bug can then be reproduced without the real system.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
import socketio
from aiohttp import web

from sio_sniffer import model
from sio_sniffer.capture import CaptureError, CaptureItem, connect_auths
from sio_sniffer.model import Record
from sio_sniffer.model.tap import HttpRequest, HttpResponse, WsMessage
from sio_sniffer.pipeline.decode import Pipeline, PipelineConfig
from sio_sniffer.support.progress import ProgressBar
from sio_sniffer.web.app import serve_app

DEFAULT_IGNORE = ("id", "_id", "ts", "timestamp", "time", "date", "created_at", "updated_at")
HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding",
                         "keep-alive", "upgrade", "te", "trailer", "proxy-connection"})


@dataclass(frozen=True)
class Observed:
    """Something the server sent to a client: an event, an ack, a refusal or an HTTP status."""

    kind: str  # event | ack | connect_error | http
    nsp: str
    name: str
    args: Any
    ts: float = field(default=0.0, compare=False)

    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.nsp, self.name)

    def describe(self) -> str:
        args = orjson.dumps(self.args, default=_json_default).decode()
        if len(args) > 300:
            args = args[:300] + "..."
        what = {"event": "", "ack": "ack of ", "connect_error": "connect_error ",
                "http": "HTTP "}[self.kind]
        return f"{self.nsp} {what}{self.name} {args}"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, bytes):
        return f"<{len(obj)} bytes>"
    return repr(obj)


@dataclass
class ClientScript:
    """One captured Engine.IO session, as replay needs it."""

    eio_sid: str
    transports: list[str]
    namespaces: list[str] = field(default_factory=list)
    auth: Any = None
    auth_redacted: bool = False
    sio_sids: dict[str, str] = field(default_factory=dict)
    connected_at: dict[str, float] = field(default_factory=dict)
    expected: list[Observed] = field(default_factory=list)
    # (namespace, event name, n-th occurrence) -> the args the client answered a server ack with
    replies: dict[tuple[str, str, int], list[Any]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One thing to do at a captured time: connect, emit, disconnect or an HTTP request."""

    ts: float
    kind: str  # connect | emit | disconnect | http
    client: str | None = None
    nsp: str = "/"
    name: str = ""
    args: tuple[Any, ...] = ()
    ack: bool = False
    request: HttpRequest | None = None


@dataclass
class Script:
    clients: dict[str, ClientScript]
    steps: list[Step]
    http_expected: list[Observed]

    @property
    def needs_auth(self) -> bool:
        return any(c.auth_redacted for c in self.clients.values())


def build_script(items: Iterable[CaptureItem], path: str = "/socket.io/") -> Script:
    """Turn a capture into a replay script by running it through the record pipeline."""
    records: list[Record] = []
    requests: dict[tuple[str, int], HttpRequest] = {}
    responses: dict[tuple[str, int], HttpResponse] = {}
    auths: dict[tuple[str, float], list[tuple[str, Any]]] = {}
    replayed: list[Record] = []
    pipeline = Pipeline(PipelineConfig(path=path), records.append)
    for item in items:
        if isinstance(item, Record):
            replayed.append(item)
            continue
        if isinstance(item, HttpRequest):
            requests[(item.conn, item.seq)] = item
            if item.method == "POST" and "EIO=" in item.target:
                found = connect_auths(item.body, polling=True)
                if found:
                    auths[(item.conn, item.ts)] = found
        elif isinstance(item, HttpResponse):
            responses[(item.conn, item.seq)] = item
        elif isinstance(item, WsMessage) and item.dir == "in":
            found = connect_auths(item.payload, polling=False, text=item.opcode == 1)
            if found:
                auths[(item.conn, item.ts)] = found
        pipeline.feed(item)
    if not records:
        records = replayed  # a capture holding only records (no tap events) still replays
    return _script_from_records(records, requests, responses, auths)


def _script_from_records(
    records: Sequence[Record],
    requests: dict[tuple[str, int], HttpRequest],
    responses: dict[tuple[str, int], HttpResponse],
    auths: dict[tuple[str, float], list[tuple[str, Any]]],
) -> Script:
    clients: dict[str, ClientScript] = {}
    steps: list[Step] = []
    http_expected: list[Observed] = []
    pending_client_acks: dict[tuple[str, str, int], str] = {}
    pending_server_acks: dict[tuple[str, str, int], tuple[str, int]] = {}
    seen_out: dict[str, Counter[tuple[str, str]]] = {}
    connected: set[str] = set()
    for rec in records:
        sid = rec.eio_sid
        if rec.event == model.HTTP_REQUEST:
            req = requests.get((str(rec.conn), int(rec.get("seq", -1))))
            if req is not None:
                steps.append(Step(ts=rec.ts, kind="http", request=req))
                resp = responses.get((req.conn, req.seq))
                if resp is not None:
                    http_expected.append(Observed("http", "", f"{req.method} {rec.get('path')}",
                                                  [resp.status]))
            continue
        if sid is None:
            continue
        if rec.event == model.EIO_OPEN:
            clients.setdefault(sid, ClientScript(sid, [rec.transport or "polling"]))
            if rec.get("user_agent"):
                clients[sid].headers["User-Agent"] = str(rec.get("user_agent"))
            continue
        client = clients.setdefault(sid, ClientScript(sid, ["polling"]))
        nsp = rec.nsp or "/"
        if rec.event == model.EIO_UPGRADE:
            client.transports = ["polling", "websocket"]
        elif rec.event == model.SIO_CONNECT:
            if nsp not in client.namespaces:
                client.namespaces.append(nsp)
            for found_nsp, auth in auths.get((str(rec.conn), rec.ts), []):
                if found_nsp == nsp:
                    client.auth = auth
            if rec.get("auth") is not None and _redacted(client.auth):
                client.auth_redacted = True
            if sid not in connected:
                connected.add(sid)
                steps.append(Step(ts=rec.ts, kind="connect", client=sid, nsp=nsp))
        elif rec.event == model.SIO_CONNECT_OK:
            client.connected_at.setdefault(nsp, rec.ts)
            if rec.sio_sid:
                client.sio_sids[nsp] = rec.sio_sid
        elif rec.event == model.SIO_CONNECT_ERROR:
            client.expected.append(Observed("connect_error", nsp, "", [rec.get("message")],
                                            rec.ts))
        elif rec.event == model.SIO_EVENT and rec.dir == "in":
            name = rec.name or ""
            if rec.ack_id is not None:
                pending_client_acks[(sid, nsp, rec.ack_id)] = name
            steps.append(Step(ts=rec.ts, kind="emit", client=sid, nsp=nsp, name=name,
                              args=tuple(rec.args or ()), ack=rec.ack_id is not None))
        elif rec.event == model.SIO_EVENT and rec.dir == "out":
            name = rec.name or ""
            client.expected.append(Observed("event", nsp, name, list(rec.args or []), rec.ts))
            count = seen_out.setdefault(sid, Counter())
            nth = count[(nsp, name)]
            count[(nsp, name)] += 1
            if rec.ack_id is not None:
                pending_server_acks[(sid, nsp, rec.ack_id)] = (name, nth)
        elif rec.event == model.SIO_ACK and rec.dir == "out" and rec.ack_id is not None:
            name = pending_client_acks.pop((sid, nsp, rec.ack_id), "?")
            client.expected.append(Observed("ack", nsp, name, list(rec.args or []), rec.ts))
        elif rec.event == model.SIO_ACK and rec.dir == "in" and rec.ack_id is not None:
            answered = pending_server_acks.pop((sid, nsp, rec.ack_id), None)
            if answered is not None:
                client.replies[(nsp, answered[0], answered[1])] = list(rec.args or [])
        elif rec.event == model.SIO_DISCONNECT and rec.dir == "in":
            steps.append(Step(ts=rec.ts, kind="disconnect", client=sid, nsp=nsp))
    # Sessions that never connected a namespace (plain Engine.IO, refused handshakes) are not
    # Socket.IO clients replay can drive.
    clients = {k: v for k, v in clients.items() if v.namespaces}
    steps = [s for s in steps if s.client is None or s.client in clients]
    steps.sort(key=lambda s: s.ts)
    return Script(clients, steps, http_expected)


def _redacted(auth: Any) -> bool:
    """Whether an auth is missing or holds the capture writer's fingerprints."""
    if auth is None:
        return True
    if isinstance(auth, dict):
        return any(isinstance(v, str) and v.startswith("sha256:") for v in auth.values())
    return isinstance(auth, str) and auth.startswith("sha256:")


def normalise(value: Any, ignore: frozenset[str], sids: dict[str, str]) -> Any:
    """A payload made comparable: ignored keys blanked, captured sids mapped to replay sids."""
    if isinstance(value, dict):
        return {k: "<ignored>" if k in ignore else normalise(v, ignore, sids)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v, ignore, sids) for v in value]
    if isinstance(value, str):
        for old, new in sids.items():
            if old in value:
                value = value.replace(old, new)
        return value
    return value


@dataclass(frozen=True)
class Difference:
    kind: str  # missing | extra | changed
    expected: Observed | None
    actual: Observed | None

    def describe(self) -> str:
        if self.kind == "missing" and self.expected is not None:
            return f"missing: {self.expected.describe()}"
        if self.kind == "extra" and self.actual is not None:
            return f"extra:   {self.actual.describe()}"
        assert self.expected is not None and self.actual is not None
        return (f"changed: {self.expected.describe()}\n"
                f"     now: {self.actual.describe()}")


def diff(expected: Sequence[Observed], actual: Sequence[Observed], ignore: frozenset[str],
         sids: dict[str, str]) -> list[Difference]:
    """Missing / extra / changed between what the server sent in the capture and in the replay."""
    exp = [Observed(o.kind, o.nsp, o.name, normalise(o.args, ignore, sids)) for o in expected]
    act = [Observed(o.kind, o.nsp, o.name, normalise(o.args, ignore, {})) for o in actual]
    out: list[Difference] = []
    matcher = difflib.SequenceMatcher(a=[o.key() for o in exp], b=[o.key() for o in act],
                                      autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            out.extend(Difference("changed", e, a) for e, a in zip(exp[i1:i2], act[j1:j2],
                                                                   strict=True)
                       if e.args != a.args)
            continue
        out.extend(Difference("missing", e, None) for e in exp[i1:i2])
        out.extend(Difference("extra", None, a) for a in act[j1:j2])
    return out


@dataclass
class ReplayResult:
    """Per captured client: the differences; plus the HTTP steps' statuses and any errors."""

    differences: dict[str, list[Difference]]
    actual: dict[str, list[Observed]]
    errors: list[str]

    @property
    def ok(self) -> bool:
        return not self.errors and not any(self.differences.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": self.errors,
            "clients": {
                cid: [{"kind": d.kind,
                       "expected": None if d.expected is None else d.expected.describe(),
                       "actual": None if d.actual is None else d.actual.describe()}
                      for d in diffs]
                for cid, diffs in self.differences.items()
            },
        }

    def text(self) -> str:
        lines = []
        for cid, diffs in self.differences.items():
            if diffs:
                lines.append(f"client {cid}: {len(diffs)} difference(s)")
                lines.extend("  " + d.describe().replace("\n", "\n  ") for d in diffs)
            else:
                lines.append(f"client {cid}: same {len(self.actual.get(cid, []))} item(s)")
        lines.extend(f"error: {e}" for e in self.errors)
        lines.append("replay matches the capture" if self.ok else "replay differs from the capture")
        return "\n".join(lines)


class _LiveClient:
    def __init__(self, script: ClientScript, auth: Any, on_receive: Callable[[], None]) -> None:
        self.script = script
        self.auth = auth
        self.received: list[Observed] = []
        self.client = socketio.AsyncClient(reconnection=False)
        self._on_receive = on_receive
        self._seen: Counter[tuple[str, str]] = Counter()
        self.sids: dict[str, str] = {}
        self.client.on("*", self._event, namespace="*")
        self.client.on("connect_error", self._connect_error, namespace="*")

    def _store(self, obs: Observed) -> None:
        self.received.append(obs)
        self._on_receive()

    async def _event(self, event: str, namespace: str, *args: Any) -> Any:
        self._store(Observed("event", namespace, event, list(args)))
        nth = self._seen[(namespace, event)]
        self._seen[(namespace, event)] += 1
        reply = self.script.replies.get((namespace, event, nth))
        return tuple(reply) if reply is not None else None

    async def _connect_error(self, namespace: str, data: Any = None) -> None:
        message = data.get("message") if isinstance(data, dict) else data
        self._store(Observed("connect_error", namespace, "", [message]))

    async def connect(self, target: str, path: str) -> None:
        await self.client.connect(
            target, namespaces=list(self.script.namespaces), auth=self.auth,
            transports=list(self.script.transports), socketio_path=path,
            headers=dict(self.script.headers), wait_timeout=10)
        # Taken now: a disconnected client no longer knows its sids.
        self.sids = self._sid_map()

    async def emit(self, step: Step) -> None:
        data: Any = step.args if step.args else None
        if not step.ack:
            await self.client.emit(step.name, data, namespace=step.nsp)
            return

        def on_ack(*args: Any) -> None:
            self._store(Observed("ack", step.nsp, step.name, list(args)))

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
                 auth: Any = None, ignore: Iterable[str] = DEFAULT_IGNORE,
                 path: str = "/socket.io/", settle: float = 1.0,
                 progress: ProgressBar | None = None) -> ReplayResult:
    """Run the script against ``target``; ``speed=None`` means as fast as possible."""
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
    ignore_set = frozenset(ignore)
    sid_map: dict[str, str] = {}
    for lc in live.values():
        sid_map.update(lc.sids)
    differences = {cid: diff(lc.script.expected, lc.received, ignore_set, sid_map)
                   for cid, lc in live.items()}
    actual = {cid: lc.received for cid, lc in live.items()}
    if script.http_expected or http_actual:
        differences["http"] = diff(script.http_expected, http_actual, ignore_set, {})
        actual["http"] = http_actual
    return ReplayResult(differences, actual, errors)


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
        http_actual.append(Observed("http", "", f"{req.method} {path}", [resp.status]))
        return
    lc = live[str(step.client)]
    if step.kind == "connect":
        await lc.connect(target, sock_path)
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


class ServedCapture:
    """A python-socketio server playing one captured client's server side to anyone connecting."""

    def __init__(self, script: Script, client: str | None = None,
                 speed: float | None = 1.0) -> None:
        if not script.clients:
            raise CaptureError("the capture has no Socket.IO client to play the server side of")
        chosen = client or max(script.clients, key=lambda c: len(script.clients[c].expected))
        if chosen not in script.clients:
            raise CaptureError(f"no captured client {chosen!r}; captured: "
                               f"{', '.join(script.clients)}")
        self.source = script.clients[chosen]
        self.speed = speed
        self.sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
        self.app = web.Application()
        self.sio.attach(self.app)
        self.sio.on("connect", self._connect, namespace="*")
        self.sio.on("*", self._client_event, namespace="*")
        self._runner: web.AppRunner | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.url = ""
        # Per namespace: each captured event and its delay after the captured CONNECT answer.
        self._timeline: dict[str, list[tuple[float, Observed]]] = {}
        for obs in self.source.expected:
            if obs.kind == "event":
                base = self.source.connected_at.get(obs.nsp, obs.ts)
                self._timeline.setdefault(obs.nsp, []).append((max(obs.ts - base, 0.0), obs))

    async def start(self, host: str, port: int) -> None:
        self._runner, bound = await serve_app(self.app, host, port)
        self.url = f"http://{host}:{bound}"

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _connect(self, namespace: str, sid: str, environ: Any, auth: Any = None) -> None:
        task = asyncio.create_task(self._play(namespace, sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _play(self, namespace: str, sid: str) -> None:
        start = time.monotonic()
        # Let the CONNECT answer go out before the first event, as a real server's would.
        await asyncio.sleep(0)
        for offset, obs in self._timeline.get(namespace, []):
            if self.speed is not None:
                delay = start + offset / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            data = tuple(obs.args) if obs.args else None
            await self.sio.emit(obs.name, data, to=sid, namespace=namespace)

    async def _client_event(self, event: str, namespace: str, sid: str, *args: Any) -> Any:
        for obs in self.source.expected:
            if obs.kind == "ack" and obs.nsp == namespace and obs.name == event:
                return tuple(obs.args)
        return None
