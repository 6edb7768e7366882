"""From tap events to Records: the one pipeline shared by the live proxy, replay and report.

The transport (or a capture reader) hands over copies of HTTP exchanges and WebSocket messages.
This module finds the Engine.IO sessions in them (by path, query and sid), feeds each body or
message to that session's sans-IO decoder, and turns the decoded packets into Records. It keeps
no clock of its own: every timestamp comes from the tap event, so a capture re-analysed offline
yields the same Records as the live run did.
"""

from __future__ import annotations

import base64
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from sio_sniffer import model
from sio_sniffer.codec.engineio import EioType
from sio_sniffer.codec.socketio import SioPacket, SioType
from sio_sniffer.codec.stream import EioItem, ErrorItem, SessionDecoder, SharedFrames, SioItem
from sio_sniffer.model import Record, redact_auth, redact_params
from sio_sniffer.model.cluster import sticky_cookies
from sio_sniffer.model.tap import (
    ConnClose,
    ConnOpen,
    Direction,
    Headers,
    HttpAbandoned,
    HttpRequest,
    HttpResponse,
    TapError,
    TapEvent,
    UpstreamError,
    WsControl,
    WsMessage,
    WsOpen,
    header,
)

OnRecord = Callable[[Record], None]

# How much of a request body is parsed as JSON for an http.request record: ingest bodies are
# small (claude-mpm's hook events are a few KiB); a huge upload is summarised, not parsed.
MAX_INGEST_JSON = 4 * 1024 * 1024
BODY_START = 80  # bytes of a body that is not JSON kept in its http.request record
# How much of a raw frame a decode_error record keeps (base64): enough to see what was wrong.
MAX_ERROR_RAW = 512
# How much of a plain Engine.IO message an eio.message record keeps: nothing analyses it, and a
# preview tells a person what the app sends.
MAX_MESSAGE_PREVIEW = 256
# Sessions whose close was never seen (a client that vanished) are forgotten oldest-first.
MAX_SESSIONS = 50_000
MAX_CONNS = 50_000


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    path: str = "/socket.io/"
    # Engine.IO polling exchanges are one line each only when asked: a long-poll per 25 s per
    # client is noise; errors (status >= 400) are always recorded.
    verbose_http: bool = False


@dataclass(slots=True)
class _Session:
    sid: str | None
    eio: int
    decoder: SessionDecoder
    transport: str
    user_agent: str | None
    peer: str | None
    sio_sids: dict[str, str] = field(default_factory=dict)
    closed: bool = False
    sticky: tuple[str, ...] = ()  # sticky-session cookie names of its handshake (a cluster)


@dataclass(slots=True)
class _Conn:
    conn: str
    peer: str
    session: _Session | None = None  # set once the connection carries an Engine.IO WebSocket
    # Who sent the first WebSocket close frame: the side that ended the session, even when the
    # other side then closes the TCP connection first (a server answering a client's close).
    ws_closed_by: str | None = None


def _query(target: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(target)
    return parts.path, {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}


# What a browser fetches for a page besides the page (Sec-Fetch-Dest), and, for a browser that
# does not send that header, the file types that are a page's assets.
_ASSET_DESTS = frozenset({"script", "style", "image", "font", "manifest", "audio", "video",
                          "track", "worker", "sharedworker", "serviceworker", "object", "embed"})
_ASSET_SUFFIXES = (".js", ".mjs", ".css", ".map", ".png", ".jpg", ".jpeg", ".gif", ".svg",
                   ".ico", ".webp", ".woff", ".woff2", ".ttf", ".json", ".webmanifest")


def _fetch(method: str, path: str, headers: Headers) -> dict[str, str]:
    """What a browser's GET is for: a page (``document``, the page is its own path) or an asset
    of the page its Referer names; nothing for other requests (hooks, API calls, curl). Only
    the Referer's path is kept: its query may carry a token."""
    if method != "GET":
        return {}
    dest = (header(headers, "sec-fetch-dest") or "").lower()
    accept = header(headers, "accept") or ""
    if dest == "document" or (not dest and accept.startswith("text/html")):
        return {"fetch": "document", "page": path}
    referer = header(headers, "referer")
    if referer and (dest in _ASSET_DESTS or (not dest and path.endswith(_ASSET_SUFFIXES))):
        return {"fetch": "asset", "page": urlsplit(referer).path or "/"}
    return {}


def _inflate(body: bytes, headers: Headers) -> tuple[bytes, str | None]:
    """Undo HTTP content coding on the copy (engine.io servers gzip polling bodies > 1 KiB)."""
    coding = (header(headers, "content-encoding") or "").strip().lower()
    if coding in ("", "identity"):
        return body, None
    try:
        if coding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS), None
        if coding == "deflate":
            try:
                return zlib.decompress(body), None
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS), None
    except zlib.error as exc:
        return body, f"{coding} body does not inflate: {exc}"
    return body, f"content coding {coding!r} is not decoded by the sniffer"


class Pipeline:
    """Feed tap events in order; Records come out through ``on_record``."""

    def tracked(self) -> dict[str, int]:
        """How many connections and sessions are held (both tables are bounded)."""
        return {"connections": len(self._conns), "sessions": len(self._sessions)}

    def tracks(self, key: str) -> bool:
        """Whether state is still held for a connection id or an Engine.IO sid."""
        return key in self._conns or key in self._sessions

    def __init__(self, config: PipelineConfig, on_record: OnRecord) -> None:
        self._config = config
        self._emit = on_record
        self._path = config.path if config.path.endswith("/") else config.path + "/"
        self._path_bare = self._path.rstrip("/")
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._conns: OrderedDict[str, _Conn] = OrderedDict()
        self._frames = SharedFrames()
        self._dispatch: dict[type, Callable[[Any], None]] = {
            ConnOpen: self._conn_open,
            ConnClose: self._conn_close,
            HttpRequest: self._http_request,
            HttpResponse: self._http_response,
            HttpAbandoned: self._http_abandoned,
            WsOpen: self._ws_open,
            WsMessage: self._ws_message,
            WsControl: self._ws_control,
            TapError: self._tap_error,
            UpstreamError: self._upstream_error,
        }

    def feed(self, event: TapEvent) -> None:
        self._dispatch[type(event)](event)

    def _is_eio(self, path: str) -> bool:
        return path.startswith(self._path) or path == self._path_bare

    def _conn_open(self, ev: ConnOpen) -> None:
        self._conns[ev.conn] = _Conn(ev.conn, ev.peer)
        if len(self._conns) > MAX_CONNS:
            self._conns.popitem(last=False)
        self._emit(Record(model.CONN_OPEN, ev.ts, conn=ev.conn, extra={"peer": ev.peer,
                                                                       "tls": ev.tls}))

    def _conn_close(self, ev: ConnClose) -> None:
        state = self._conns.pop(ev.conn, None)
        session = state.session if state else None
        sid = session.sid if session else None
        self._emit(Record(model.CONN_CLOSE, ev.ts, conn=ev.conn, eio_sid=sid,
                          extra={"by": ev.by, "error": ev.error}))
        if session is not None and not session.closed:
            # The WebSocket was the session's transport: losing it ends the Engine.IO session.
            by = state.ws_closed_by if state and state.ws_closed_by else None
            self._close_session(session, ev.ts, ev.conn,
                                f"{by} closed the WebSocket" if by
                                else f"transport closed by {ev.by}")

    def _peer(self, conn: str) -> str | None:
        state = self._conns.get(conn)
        return state.peer if state else None

    def _http_request(self, ev: HttpRequest) -> None:
        path, query = _query(ev.target)
        if self._is_eio(path):
            if ev.method == "POST" and "sid" in query:
                self._polling(self._session_for(query, ev.headers, ev.conn), "in", ev)
            return
        args: Any = None
        ctype = header(ev.headers, "content-type") or ""
        extra: dict[str, Any] = {}
        if ev.body and len(ev.body) <= MAX_INGEST_JSON and "json" in ctype.lower():
            try:
                args = orjson.loads(ev.body)
            except orjson.JSONDecodeError as exc:
                # What a rejection of this body will be explained by: the parser's complaint and
                # the body's first bytes.
                extra = {"body_error": str(exc).split(":")[0][:120],
                         "body_start": ev.body[:BODY_START].decode("utf-8", "replace")}
        query = redact_params(query)
        self._emit(Record(model.HTTP_REQUEST, ev.ts, conn=ev.conn, args=args, size=len(ev.body),
                          extra={"method": ev.method, "path": path, "query": query or None,
                                 "seq": ev.seq, "user_agent": header(ev.headers, "user-agent"),
                                 "content_type": ctype or None, "body_size": len(ev.body),
                                 "peer": self._peer(ev.conn), **extra,
                                 **_fetch(ev.method, path, ev.headers)}))

    def _http_abandoned(self, ev: HttpAbandoned) -> None:
        path, _ = _query(ev.request.target)
        if self._is_eio(path):
            return  # a long-poll left behind by a closing tab is how polling ends
        self._emit(Record(model.HTTP_ABANDONED, ev.ts, conn=ev.conn,
                          extra={"method": ev.request.method, "path": path,
                                 "seq": ev.request.seq,
                                 "waited_ms": round((ev.ts - ev.request.ts) * 1000, 3)}))

    def _http_response(self, ev: HttpResponse) -> None:
        req = ev.request
        path, query = _query(req.target)
        engineio = self._is_eio(path)
        if engineio and ev.status == 200 and req.method == "GET" and \
                query.get("transport", "polling") == "polling":
            session = self._session_for(query, req.headers, ev.conn)
            if "sid" not in query:  # the handshake: a load balancer pins the client here
                session.sticky = session.sticky or sticky_cookies(ev.headers)
            self._polling(session, "out", ev)
        if engineio and ev.status < 400 and not self._config.verbose_http:
            return
        extra: dict[str, Any] = {
            "method": req.method, "path": path, "status": ev.status, "bytes": len(ev.body),
            "req_bytes": len(req.body), "duration_ms": round((ev.ts - req.ts) * 1000, 3),
            "seq": ev.seq, "engineio": engineio,
        }
        if not engineio:
            extra.update(_fetch(req.method, path, req.headers))
        sticky = sticky_cookies(req.headers + ev.headers)
        if sticky:
            extra["sticky"] = list(sticky)
        if ev.status >= 400:
            body, _ = _inflate(ev.body, ev.headers)
            extra["body"] = body[:300].decode("utf-8", "replace")
        sid = query.get("sid") if engineio else None
        transport = query.get("transport") if engineio else None
        self._emit(Record(model.HTTP, ev.ts, conn=ev.conn, eio_sid=sid, transport=transport,
                          extra=extra))

    def _polling(self, session: _Session, dir: Direction, ev: HttpRequest | HttpResponse) -> None:
        """Decode the body of a polling exchange in direction ``dir`` (after any inflating)."""
        body, problem = _inflate(ev.body, ev.headers)
        if problem:
            self._decode_problem(ev.ts, ev.conn, session.sid, dir, problem, ev.body)
        else:
            self._feed_items(session, ev.ts, ev.conn,
                             session.decoder.polling(dir, body, header(ev.headers, "content-type")))

    def _session_for(self, query: dict[str, str], headers: Headers, conn: str) -> _Session:
        """The session a request belongs to; a handshake (no sid) starts a new one."""
        sid = query.get("sid")
        if sid is not None:
            session = self._sessions.get(sid)
            if session is not None:
                return session
        try:
            eio = int(query.get("EIO", "4"))
        except ValueError:
            eio = 4
        session = _Session(sid=sid, eio=eio if eio in (3, 4) else 4,
                           decoder=SessionDecoder(eio=eio if eio in (3, 4) else 4, socketio=None,
                                                  shared=self._frames),
                           transport=query.get("transport", "polling"),
                           user_agent=header(headers, "user-agent"), peer=self._peer(conn),
                           sticky=sticky_cookies(headers))
        if sid is not None:
            self._remember(session)
        return session

    def _remember(self, session: _Session) -> None:
        assert session.sid is not None
        self._sessions[session.sid] = session
        self._sessions.move_to_end(session.sid)
        if len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)

    def _ws_open(self, ev: WsOpen) -> None:
        path, query = _query(ev.request.target)
        state = self._conns.get(ev.conn)
        sid = query.get("sid")
        self._emit(Record(model.WS_OPEN, ev.ts, conn=ev.conn, eio_sid=sid, transport="websocket",
                          extra={"path": path, "deflate": ev.deflate}))
        if not self._is_eio(path) or state is None:
            return
        session = self._session_for(query, ev.request.headers, ev.conn)
        state.session = session

    def _ws_message(self, ev: WsMessage) -> None:
        state = self._conns.get(ev.conn)
        if state is None or state.session is None:
            return
        session = state.session
        self._feed_items(session, ev.ts, ev.conn,
                         session.decoder.websocket(ev.dir, ev.payload, ev.opcode == 1),
                         len(ev.payload))

    def _ws_control(self, ev: WsControl) -> None:
        if ev.opcode != 8:
            return
        state = self._conns.get(ev.conn)
        sid = state.session.sid if state and state.session else None
        if state is not None and state.ws_closed_by is None:
            state.ws_closed_by = "client" if ev.dir == "in" else "server"
        self._emit(Record(model.WS_CLOSE, ev.ts, conn=ev.conn, eio_sid=sid, dir=ev.dir,
                          transport="websocket",
                          extra={"code": ev.close_code, "reason": ev.close_reason}))

    def _tap_error(self, ev: TapError) -> None:
        self._decode_problem(ev.ts, ev.conn, None, ev.dir, ev.reason, ev.raw, ev.layer, ev.offset)

    def _upstream_error(self, ev: UpstreamError) -> None:
        self._emit(Record(model.UPSTREAM_ERROR, ev.ts, conn=ev.conn,
                          extra={"url": ev.url, "reason": ev.reason}))

    def _decode_problem(self, ts: float, conn: str, sid: str | None, direction: str, reason: str,
                        raw: bytes, layer: str = "http", offset: int = 0) -> None:
        self._emit(Record(model.DECODE_ERROR, ts, conn=conn, eio_sid=sid, dir=direction,
                          size=len(raw),
                          extra={"reason": reason, "offset": offset, "layer": layer,
                                 "raw": base64.b64encode(raw[:MAX_ERROR_RAW]).decode()}))

    def _close_session(self, session: _Session, ts: float, conn: str, reason: str) -> None:
        session.closed = True
        if session.sid is not None:
            self._sessions.pop(session.sid, None)
        self._emit(Record(model.EIO_CLOSE, ts, conn=conn, eio_sid=session.sid,
                          transport=session.transport, extra={"reason": reason}))

    def _feed_items(self, session: _Session, ts: float, conn: str,
                    items: list[EioItem | SioItem | ErrorItem], size: int | None = None) -> None:
        # A WebSocket message that completes one Socket.IO packet gives its size on the wire;
        # packets inside a polling payload are not measured one by one.
        for item in items:
            if type(item) is SioItem:
                self._sio(session, ts, conn, item, size if len(items) == 1 else None)
            elif type(item) is EioItem:
                self._eio(session, ts, conn, item)
            elif type(item) is ErrorItem:
                err = item.error
                self._decode_problem(ts, conn, session.sid, item.dir, err.reason, err.raw,
                                     err.layer, err.offset)

    def _eio(self, session: _Session, ts: float, conn: str, item: EioItem) -> None:
        pkt = item.packet
        kind = pkt.type
        if kind == EioType.OPEN:
            info = session.decoder.open_info or {}
            sid = session.decoder.sid
            if sid is not None and session.sid != sid:
                session.sid = sid
                self._remember(session)
            session.transport = item.transport
            if item.transport == "websocket":
                state = self._conns.get(conn)
                if state is not None:
                    state.session = session
            self._emit(Record(model.EIO_OPEN, ts, conn=conn, eio_sid=session.sid,
                              transport=item.transport, dir="out",
                              extra={"eio": session.eio, "upgrades": info.get("upgrades"),
                                     "ping_interval": info.get("pingInterval"),
                                     "ping_timeout": info.get("pingTimeout"),
                                     "max_payload": info.get("maxPayload"),
                                     "user_agent": session.user_agent, "peer": session.peer,
                                     **({"sticky": list(session.sticky)}
                                        if session.sticky else {})}))
        elif kind in (EioType.PING, EioType.PONG):
            probe = pkt.data == "probe"
            self._emit(Record(model.EIO_PING if kind == EioType.PING else model.EIO_PONG, ts,
                              conn=conn, eio_sid=session.sid, transport=item.transport,
                              dir=item.dir, extra={"probe": True} if probe else {}))
        elif kind == EioType.UPGRADE:
            session.transport = "websocket"
            self._emit(Record(model.EIO_UPGRADE, ts, conn=conn, eio_sid=session.sid,
                              transport="websocket", dir=item.dir))
        elif kind == EioType.CLOSE:
            self._close_session(session, ts, conn,
                                "client sent close" if item.dir == "in" else "server sent close")
        elif kind == EioType.MESSAGE:
            data = pkt.data
            size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8"))
            self._emit(Record(model.EIO_MESSAGE, ts, conn=conn, eio_sid=session.sid,
                              transport=item.transport, dir=item.dir,
                              args=data[:MAX_MESSAGE_PREVIEW], size=size))

    def _sio(self, session: _Session, ts: float, conn: str, item: SioItem,
             size: int | None) -> None:
        pkt: SioPacket = item.packet
        kind = pkt.type
        nsp = pkt.namespace
        sid = session.sid
        if kind is SioType.EVENT or kind is SioType.BINARY_EVENT:
            # The path nearly every packet takes: built in one call, no helper.
            self._emit(Record(model.SIO_EVENT, ts, conn, sid, item.transport, item.dir, nsp,
                              session.sio_sids.get(nsp), pkt.name, pkt.id, pkt.args, size,
                              {"attachments": pkt.attachments} if pkt.attachments else {}))
            return

        def rec(kind: str, **fields: Any) -> Record:
            return Record(kind, ts, conn=conn, eio_sid=sid, transport=item.transport,
                          dir=item.dir, nsp=nsp, **fields)

        if kind in (SioType.ACK, SioType.BINARY_ACK):
            self._emit(rec(model.SIO_ACK, sio_sid=session.sio_sids.get(nsp),
                              ack_id=pkt.id, args=pkt.data, size=size))
        elif kind == SioType.CONNECT and item.dir == "in":
            auth = pkt.data
            self._emit(rec(model.SIO_CONNECT, extra={
                "auth": redact_auth(auth),
                "auth_keys": sorted(auth) if isinstance(auth, dict) else []}))
        elif kind == SioType.CONNECT:
            data = pkt.data
            sio_sid = data.get("sid") if isinstance(data, dict) else None
            if sio_sid is None and session.eio == 3:
                sio_sid = sid  # Socket.IO v4: the socket id is the Engine.IO sid
            if isinstance(sio_sid, str):
                session.sio_sids[nsp] = sio_sid
            self._emit(rec(model.SIO_CONNECT_OK,
                           sio_sid=sio_sid if isinstance(sio_sid, str) else None))
        elif kind == SioType.CONNECT_ERROR:
            data = pkt.data
            message = data.get("message") if isinstance(data, dict) else data
            self._emit(rec(model.SIO_CONNECT_ERROR, extra={"message": message,
                                     "data": data.get("data") if isinstance(data, dict) else None}))
        elif kind == SioType.DISCONNECT:
            self._emit(rec(model.SIO_DISCONNECT, sio_sid=session.sio_sids.pop(nsp, None)))
