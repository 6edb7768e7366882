"""Building a replay script from a capture: its records, through the one record chain, become
per-client scripts (namespaces, auth, emits, answers to server acks) and timed steps."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from sio_sniffer import model
from sio_sniffer.capture import CaptureItem, connect_auths
from sio_sniffer.model import Record
from sio_sniffer.model.tap import HttpRequest, HttpResponse, WsMessage
from sio_sniffer.pipeline.chain import Chain
from sio_sniffer.pipeline.decode import Pipeline, PipelineConfig


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

    def place(self) -> str:
        """Where it came, without its arguments: ``/ pong``, ``/admin ack of stats``."""
        what = {"event": "", "ack": "ack of ", "connect_error": "connect_error ",
                "http": "HTTP "}[self.kind]
        return f"{self.nsp} {what}{self.name}"

    def describe(self) -> str:
        args = orjson.dumps(self.args, default=_json_default).decode()
        if len(args) > 300:
            args = args[:300] + "..."
        return f"{self.place()} {args}"


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
    # The namespaces the client asked for before the server answered any: its first connect.
    # Those it joined later are ``join`` steps at their captured time.
    first_namespaces: list[str] = field(default_factory=list)
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
    """One thing to do at a captured time: connect, join a namespace later, emit, disconnect or
    an HTTP request."""

    ts: float
    kind: str  # connect | join | emit | disconnect | http
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
    """Turn a capture into a replay script by running it through the pipeline and the record
    chain (no analysis: the script needs the traffic, not flags)."""
    records: list[Record] = []
    requests: dict[tuple[str, int], HttpRequest] = {}
    responses: dict[tuple[str, int], HttpResponse] = {}
    auths: dict[tuple[str, float], list[tuple[str, Any]]] = {}
    replayed: list[Record] = []
    pipeline = Pipeline(PipelineConfig(path=path), Chain(None, [records.append]).record)
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
    heard_back: set[str] = set()  # clients the server answered a CONNECT of
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
            if sid not in heard_back:
                if nsp not in client.first_namespaces:
                    client.first_namespaces.append(nsp)
            else:
                steps.append(Step(ts=rec.ts, kind="join", client=sid, nsp=nsp))
        elif rec.event == model.SIO_CONNECT_OK:
            heard_back.add(sid)
            client.connected_at.setdefault(nsp, rec.ts)
            if rec.sio_sid:
                client.sio_sids[nsp] = rec.sio_sid
        elif rec.event == model.SIO_CONNECT_ERROR:
            heard_back.add(sid)
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
