"""The relay at byte level: exact bytes, half-close, backpressure, odd requests, errors, TLS."""

from __future__ import annotations

import asyncio
import datetime
import errno
import hashlib
import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sio_sniffer.model.tap import (
    ConnClose,
    ConnOpen,
    HttpRequest,
    HttpResponse,
    TapError,
    UpstreamError,
    WsControl,
    WsMessage,
    WsOpen,
)
from sio_sniffer.transport.relay import PortInUseError, Relay
from tests.conftest import free_port
from tests.transport.relay_peers import Tap, node_server, py_server, relay_to, relay_url

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[str]:
    """A raw asyncio TCP server on a free port; yields its http:// URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def exchange(url: str, request: bytes) -> bytes:
    """Send ``request`` on a new connection and read until the server closes it."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


async def test_pipelined_chunked_requests_and_half_close_are_byte_exact() -> None:
    """Bytes cross unchanged both ways; the server answers after the client's EOF reached it."""
    sent = (
        b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        b"GET /b HTTP/1.1\r\nHost: h\r\nCookie: a=b\r\nOrigin: http://o\r\n\r\n"
    )
    answer = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nSet-Cookie: s=1\r\n\r\nnope"
    )
    received_by_server = asyncio.get_running_loop().create_future()

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client's EOF, which must come through
        received_by_server.set_result(data)
        for i in range(0, len(answer), 7):
            writer.write(answer[i:i + 7])
            await writer.drain()
        writer.close()

    tap = Tap()
    async with tcp_server(server) as url, relay_to(url, tap) as relay:
        host, port = relay.bound[0]
        reader, writer = await asyncio.open_connection(host, port)
        for i in range(0, len(sent), 37):
            writer.write(sent[i:i + 37])
            await writer.drain()
        writer.write_eof()
        got = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert await received_by_server == sent
        assert got == answer
        close = await tap.wait_for(lambda e: isinstance(e, ConnClose))
    assert close.by == "client"
    requests = tap.of(HttpRequest)
    responses = tap.of(HttpResponse)
    assert [(r.method, r.target, r.body) for r in requests] == [
        ("POST", "/a?x=1", b"hello world"), ("GET", "/b", b"")]
    assert [(r.seq, r.status, r.body, r.request.target) for r in responses] == [
        (0, 200, b"abc", "/a?x=1"), (1, 404, b"nope", "/b")]
    assert tap.of(TapError) == []


async def test_request_and_eof_before_the_upstream_fails_get_the_502_and_a_close() -> None:
    """A client sends its request and its EOF while the upstream connection is still being
    made (Python 3.10 reads both before the relay's pause takes), then the upstream fails (a
    TLS upstream that hangs up mid-handshake): the client still gets the 502, and the relay
    ends the connection itself."""
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(0.3)
        writer.close()

    tap = Tap()
    async with tcp_server(hang_up) as url, \
            relay_to(url.replace("http://", "https://"), tap,
                     ssl_upstream=ssl.create_default_context()) as relay:
        host, port = relay.bound[0]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        writer.write_eof()
        answer = await asyncio.wait_for(reader.read(), 10)
        # the relay ends the connection itself: the client has not closed its socket yet
        await tap.wait_for(lambda e: isinstance(e, ConnClose))
        writer.close()
    assert answer.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert tap.of(UpstreamError)


async def test_upstream_down_answers_502_and_reports_it() -> None:
    """Nothing listening upstream: the client gets a 502 naming the URL; the tap, UpstreamError."""
    upstream = f"http://127.0.0.1:{free_port()}"
    tap = Tap()
    async with relay_to(upstream, tap) as relay:
        answer = await exchange(relay_url(relay), b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        await tap.wait_for(lambda e: isinstance(e, ConnClose))
    reason = f"upstream refused connection at {upstream}: is the server running?"
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
    assert body == b"sio-sniffer: " + reason.encode() + b"\n"  # the log's reason stays bare
    errors = tap.of(UpstreamError)
    assert [(e.url, e.reason) for e in errors] == [(upstream, reason)]
    assert [r.status for r in tap.of(HttpResponse)] == [502]
    assert tap.of(ConnClose)[0].by == "proxy"


async def test_python_client_through_relay_with_upstream_down_gets_an_error() -> None:
    """A python-socketio client sees a failed connection (the 502), not a hang."""
    tap = Tap()
    async with relay_to(f"http://127.0.0.1:{free_port()}", tap) as relay:
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(relay_url(relay), transports=["polling"], wait_timeout=5)
    assert tap.of(UpstreamError)


async def test_port_in_use_names_the_holder_and_the_fix() -> None:
    """A taken listen port raises PortInUseError naming the process and the claude-mpm fix."""
    async with node_server() as (url, server):
        port = int(url.rsplit(":", 1)[1])
        relay = Relay(url, [("127.0.0.1", 0), ("127.0.0.1", port)], lambda e: None)
        with pytest.raises(PortInUseError) as caught:
            await relay.start()
    message = str(caught.value)
    assert caught.value.errno == errno.EADDRINUSE and isinstance(caught.value, OSError)
    assert f"127.0.0.1:{port}" in message and "already in use" in message
    assert f"pid {server.proc.pid} (node " in message
    assert "claude-mpm monitor start --port 8766" in message
    assert relay.bound == []  # the address that did bind was released again


async def test_listens_on_ipv4_and_ipv6_loopback_with_one_port() -> None:
    """127.0.0.1 and ::1 both serve (one port); ::1 is skipped silently where there is no IPv6."""
    async with tcp_server(echo_server) as url:
        relay = Relay(url, [("127.0.0.1", 0), ("::1", 0)], lambda e: None)
        await relay.start()
        try:
            ports = {port for _, port in relay.bound}
            assert len(ports) == 1 and relay.bound[0][0] == "127.0.0.1"
            for host, port in relay.bound:
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(b"ping")
                assert await reader.readexactly(4) == b"ping"
                writer.close()
            hosts = [host for host, _ in relay.bound]
            assert hosts == (["127.0.0.1", "::1"] if ipv6_loopback_available() else ["127.0.0.1"])
        finally:
            await relay.stop()
    assert relay.bound == []


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def echo_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


MASK_DATE = re.compile(rb"\r\nDate: [^\r]*")


def normalized(answer: bytes, sid: str | None) -> bytes:
    """An answer with the parts that differ run to run (date, session id) masked."""
    answer = MASK_DATE.sub(b"\r\nDate: *", answer)
    if sid:
        answer = answer.replace(sid.encode(), b"SID")
    return answer


async def odd_answers(url: str, concurrent_gets: bool) -> list[bytes]:
    """What a server answers to requests a Socket.IO client would not make."""
    host = url.removeprefix("http://").encode()

    def request(line: bytes, extra: bytes = b"") -> bytes:
        return line + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n" + extra

    answers = []
    for raw in (
        request(b"PUT /socket.io/?EIO=4&transport=polling", b"Content-Length: 2\r\n\r\nhi"),
        request(b"GET /socket.io/?transport=polling", b"\r\n"),
        request(b"GET /socket.io/?EIO=4&transport=carrier-pigeon", b"\r\n"),
    ):
        answers.append(normalized(await exchange(url, raw), None))
    handshake = await exchange(url, request(b"GET /socket.io/?EIO=4&transport=polling", b"\r\n"))
    found = re.search(rb'"sid":"([^"]+)"', handshake)
    assert found is not None
    sid = found.group(1)
    answers.append(normalized(handshake, sid.decode()))
    if not concurrent_gets:
        return answers
    poll = request(b"GET /socket.io/?EIO=4&transport=polling&sid=" + sid, b"\r\n")
    polls = [asyncio.ensure_future(exchange(url, poll)) for _ in range(2)]
    await asyncio.wait(polls, return_when=asyncio.FIRST_COMPLETED)
    # Node has ended the session by now: it answers this close packet with an error
    close = request(b"POST /socket.io/?EIO=4&transport=polling&sid=" + sid,
                    b"Content-Type: text/plain\r\nContent-Length: 1\r\n\r\n1")
    answers.append(normalized(await exchange(url, close), sid.decode()))
    # which of two concurrent GETs the server took first is up to the scheduler: sort the answers
    answers.extend(sorted([normalized(await task, sid.decode()) for task in polls]))
    return answers


@pytest.mark.parametrize("server", ["node", "py"])
async def test_odd_requests_get_the_servers_own_answer(server: str) -> None:
    """PUT, missing EIO, unknown transport, a second concurrent GET: the server decides, unchanged.

    Only Node answers two concurrent GETs at once (the second is refused and the session ends);
    python-engineio holds both for a ping period, so that case runs against Node only.
    """
    tap = Tap()
    node = server == "node"
    async with (node_server() if node else py_server()) as (url, _peer):
        direct = await odd_answers(url, concurrent_gets=node)
        async with relay_to(url, tap) as relay:
            relayed = await odd_answers(relay_url(relay), concurrent_gets=node)
    assert relayed == direct
    assert [a.split(b" ", 2)[1] for a in relayed[:4]] == (
        [b"400", b"400", b"400", b"200"] if node else [b"405", b"400", b"400", b"200"])
    methods = sorted(r.method for r in tap.of(HttpRequest))
    if node:
        assert any(a.startswith(b"HTTP/1.1 400 ") for a in relayed[5:])  # a second GET refused
        assert methods == ["GET"] * 5 + ["POST", "PUT"]
    else:
        assert methods == ["GET"] * 3 + ["PUT"]
    assert tap.of(TapError) == []


@pytest.mark.parametrize("direction", ["out", "in"])
async def test_backpressure_pauses_the_other_side(direction: str) -> None:
    """A reader that stops reading stops the relay reading the sender; nothing is lost."""
    payload = bytes(range(256)) * (32 * 4096)  # 32 MiB
    digest = asyncio.get_running_loop().create_future()

    async def server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if direction == "out":
            writer.write(payload)
            await writer.drain()
            writer.close()
        else:
            await reader_ready.wait()
            digest.set_result(hashlib.sha256(await reader.read()).hexdigest())
            writer.close()

    reader_ready = asyncio.Event()
    async with tcp_server(server) as url, relay_to(url, lambda e: None) as relay:
        host, port = relay.bound[0]
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 16)
        if direction == "in":
            writer.write(payload)
        (link,) = relay.links

        def legs() -> tuple[Any, Any]:
            """(the leg towards the stalled reader, the leg from the sender)."""
            return (link.client, link.server) if direction == "out" else (link.server,
                                                                          link.client)

        # no event says "the relay paused": look until, with both legs joined, the sender's leg
        # stops being read
        for _ in range(1000):
            sink, source = legs()
            if link.client.peer is not None and not source.transport.is_reading():
                break
            await asyncio.sleep(0.01)
        sink, source = legs()
        assert not source.transport.is_reading()
        assert sink.transport.get_write_buffer_size() <= 2 * 1024 * 1024
        if direction == "out":
            got = await asyncio.wait_for(reader.read(), 30)
            assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()
        else:
            reader_ready.set()
            await writer.drain()
            writer.write_eof()
            assert await asyncio.wait_for(digest, 30) == hashlib.sha256(payload).hexdigest()
        writer.close()


async def test_a_raising_consumer_and_garbage_do_not_touch_forwarding() -> None:
    """Non-HTTP bytes are forwarded exactly; the tap reports them, a failing callback is ignored."""
    seen = Tap()

    def consumer(event: object) -> None:
        seen(event)  # type: ignore[arg-type]
        raise RuntimeError("consumer bug")

    garbage = b"\x16\x03\x01 not http at all\r\n\r\n" + bytes(range(256))
    async with tcp_server(echo_server) as url, relay_to(url, consumer) as relay:  # type: ignore[arg-type]
        host, port = relay.bound[0]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(garbage)
        assert await reader.readexactly(len(garbage)) == garbage
        writer.write(b"still flowing")
        assert await reader.readexactly(13) == b"still flowing"
        writer.close()
        await seen.wait_for(lambda e: isinstance(e, ConnClose))
    errors = seen.of(TapError)
    assert [(e.dir, e.layer) for e in errors] == [("in", "http"), ("out", "http")]
    assert "request line" in errors[0].reason and errors[0].raw.startswith(b"\x16\x03\x01")
    assert "status line" in errors[1].reason


def make_cert(tmp: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return cert_path, key_path


async def test_tls_on_both_legs(tmp_path: Path) -> None:
    """TLS to the client with the user's cert and TLS to an https upstream (SNI = its host)."""
    cert, key = make_cert(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    sni: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: sni.append(name)  # type: ignore[assignment]
    listen_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    listen_ctx.load_cert_chain(cert, key)
    trust = ssl.create_default_context(cafile=str(cert))
    tap = Tap()
    async with py_server(ssl_context=server_ctx) as (url, _sio):
        upstream = url.replace("127.0.0.1", "localhost")
        async with relay_to(upstream, tap, ssl_listen=listen_ctx, ssl_upstream=trust) as relay:
            session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust))
            client = socketio.AsyncClient(reconnection=False, http_session=session)
            await client.connect(relay_url(relay, "https"), transports=["polling", "websocket"],
                                 wait_timeout=10)
            try:
                assert client.transport() == "websocket"
                assert await client.call("echo", ("tls", b"\x00\xff"), timeout=10) == {
                    "echo": ["tls", b"\x00\xff"]}
            finally:
                await client.disconnect()
                await session.close()
    assert sni and set(sni) == {"localhost"}
    assert all(o.tls for o in tap.of(ConnOpen))
    assert tap.of(WsOpen) and tap.of(TapError) == []
    assert any(b'"echo"' in m.payload for m in tap.of(WsMessage) if m.dir == "in")


async def test_untrusted_upstream_certificate_is_a_502(tmp_path: Path) -> None:
    """An https upstream that fails verification: 502 and an UpstreamError saying TLS failed."""
    cert, key = make_cert(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    tap = Tap()
    async with py_server(ssl_context=server_ctx) as (url, _sio):
        upstream = url.replace("http://", "https://")
        async with relay_to(upstream, tap) as relay:
            answer = await exchange(relay_url(relay), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 502 ")
    (error,) = tap.of(UpstreamError)
    assert error.reason.startswith(f"TLS handshake with upstream {upstream} failed")


async def test_websocket_close_codes_and_control_frames_pass_through() -> None:
    """Close codes and reasons both ways, pings and pongs: as the peers sent them."""
    server_saw: asyncio.Future[tuple[int | None, str]] = asyncio.get_running_loop().create_future()

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        async for msg in ws:
            if msg.data == "close-me":
                await ws.close(code=4001, message=b"bye now")
        if not server_saw.done():
            server_saw.set_result((ws.close_code, ""))
        return ws

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    tap = Tap()
    try:
        async with relay_to(url, tap) as relay, aiohttp.ClientSession() as http:
            ws = await http.ws_connect(relay_url(relay) + "/ws", autoping=False)
            await ws.ping(b"are you there")
            pong = await ws.receive(timeout=5)
            assert pong.type == aiohttp.WSMsgType.PONG and pong.data == b"are you there"
            await ws.send_str("close-me")
            closing = await ws.receive(timeout=5)
            assert closing.type == aiohttp.WSMsgType.CLOSE
            assert (closing.data, closing.extra) == (4001, "bye now")
            await ws.close()
            ws2 = await http.ws_connect(relay_url(relay) + "/ws")
            await ws2.close(code=4002, message=b"client says bye")
            await tap.wait_for(lambda e: isinstance(e, WsControl) and e.close_code == 4002)
    finally:
        await runner.cleanup()
    controls = [(c.dir, c.opcode, c.payload if c.opcode != 8 else b"", c.close_code,
                 c.close_reason) for c in tap.of(WsControl)]
    assert ("in", 9, b"are you there", None, "") in controls
    assert ("out", 10, b"are you there", None, "") in controls
    assert ("out", 8, b"", 4001, "bye now") in controls
    assert ("in", 8, b"", 4002, "client says bye") in controls
    assert tap.of(TapError) == []
