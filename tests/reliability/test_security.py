"""Security: loopback binds by default, secrets only as fingerprints, and `redact` for sharing."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

from sio_sniffer.analysis import AnalysisConfig
from sio_sniffer.capture import CaptureReader, CaptureWriter
from sio_sniffer.cli import build_parser
from sio_sniffer.commands.proxy import build_config
from sio_sniffer.diagnostics.server import DiagnosticServer
from sio_sniffer.model import Record, fingerprint
from sio_sniffer.model.tap import HttpRequest, HttpResponse, WsMessage
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from sio_sniffer.web.adminui import AdminUIBridge
from sio_sniffer.web.live.server import LiveUI
from tests.reliability.rel_peers import sniffing
from tests.reliability.test_process import proxy

AUTH_TOKEN = "tok-AUTH-7d1e0c"
BEARER = "Bearer BEARER-55aa01"
COOKIE = "session=COOKIE-9f9f9f"
SET_COOKIE = "srv=SETCOOKIE-1b2c3d; Path=/"
SECRET_ARG = "payload-PRIVATE-42"
SECRETS = (AUTH_TOKEN, "BEARER-55aa01", "COOKIE-9f9f9f", "SETCOOKIE-1b2c3d")


def _loopback(host: str) -> bool:
    return ipaddress.ip_address(host.split("%")[0]).is_loopback


async def test_every_server_binds_loopback_by_default() -> None:
    """Proxy, diagnostic server, live UI and Admin UI bridge listen on loopback unless told
    otherwise; the CLI defaults say the same; a UI on another address demands a token."""
    args = build_parser(["proxy"]).parse_args(["proxy"])
    assert all(_loopback(h) for h, _ in build_config(args).sniffer.listen)
    assert build_parser(["serve"]).parse_args(["serve"]).host == "127.0.0.1"
    host, _ = build_parser(["replay"]).parse_args(["replay", "x.jsonl"]).listen
    assert _loopback(host)
    sniffer = Sniffer(ProxyConfig(listen=[(h, 0) for h, _ in ProxyConfig().listen]))
    server = DiagnosticServer()
    server.port = 0
    ui = LiveUI()
    admin = AdminUIBridge()
    await sniffer.start()
    await server.start()
    await ui.start()
    await admin.start()
    try:
        assert sniffer.bound and all(_loopback(h) for h, _ in sniffer.bound)
        assert _loopback(server.host)
        assert ui.bound and all(_loopback(h) for h, _ in ui.bound)
        assert admin.bound is not None and _loopback(admin.bound[0])
    finally:
        await admin.stop()
        await ui.stop()
        await server.stop()
        await sniffer.stop()
    assert LiveUI("0.0.0.0").token


def secret_server(sio: socketio.AsyncServer, app: web.Application) -> None:
    async def set_cookie(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.add("Set-Cookie", SET_COOKIE)

    app.on_response_prepare.append(set_cookie)

    @sio.on("echo")  # type: ignore[untyped-decorator]
    async def echo(sid: str, *args: Any) -> Any:
        return list(args)


async def _secret_session(url: str, transports: list[str]) -> None:
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, transports=transports, auth={"token": AUTH_TOKEN},
                         headers={"Authorization": BEARER, "Cookie": COOKIE}, wait_timeout=10)
    assert await client.call("echo", SECRET_ARG, timeout=10) == [SECRET_ARG]
    await client.disconnect()


async def test_secrets_only_as_fingerprints_in_log_and_capture(
        tmp_path: Path, py_server_factory: Any) -> None:
    """Auth, Authorization, Cookie and Set-Cookie values never reach the log or the capture
    (polling and WebSocket); with --show-secrets the capture keeps them and the log still not."""
    server = await py_server_factory(secret_server)
    for show in (False, True):
        log, capture = tmp_path / f"log{show}.jsonl", tmp_path / f"cap{show}.jsonl"
        extra = ["--show-secrets"] if show else []
        async with proxy(server.url, "--log", str(log), "--capture", str(capture),
                         *extra) as sniffer:
            await _secret_session(sniffer.url, ["polling"])
            await _secret_session(sniffer.url, ["polling", "websocket"])
            code, stderr = await sniffer.stop(2)
        assert code == 0, stderr
        log_text, capture_text = log.read_text(), capture.read_text()
        for secret in SECRETS:
            assert secret not in log_text
            assert (secret in capture_text) == show, secret
        assert fingerprint(AUTH_TOKEN) in log_text
        if not show:
            assert fingerprint(BEARER) in capture_text and fingerprint(COOKIE) in capture_text
            assert fingerprint(SET_COOKIE) in capture_text


async def test_query_tokens_are_fingerprinted(tmp_path: Path, py_server_factory: Any) -> None:
    """A token passed in the connection URL's query (Socket.IO v2 style) is a secret too: it
    appears in neither the log nor the capture."""
    server = await py_server_factory(secret_server)
    log, capture = tmp_path / "log.jsonl", tmp_path / "cap.jsonl"
    async with proxy(server.url, "--log", str(log), "--capture", str(capture),
                     "--verbose") as sniffer:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(f"{sniffer.url}?token={AUTH_TOKEN}", transports=["polling"],
                             wait_timeout=10)
        await client.disconnect()
        code, _ = await sniffer.stop(2)
    assert code == 0
    assert AUTH_TOKEN not in log.read_text()
    assert AUTH_TOKEN not in capture.read_text()


async def test_fingerprints_tell_tokens_apart(py_server_factory: Any) -> None:
    """Two clients with different tokens get different auth fingerprints, the same token the
    same one, and the fingerprint is the documented sha256:8-hex of the auth."""
    server = await py_server_factory()
    async with sniffing(server.url, AnalysisConfig()) as (_sniffer, records):
        for token in ("alpha-token", "beta-token", "alpha-token"):
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(_sniffer.url, transports=["websocket"],
                                 auth={"token": token}, wait_timeout=10)
            await client.disconnect()
        connects = await records.wait_count("sio.connect", 3)
    prints = [r.get("auth")["token"] for r in connects]
    assert prints[0] != prints[1] and prints[0] == prints[2]
    assert prints[0] == fingerprint("alpha-token")
    assert all(p.startswith("sha256:") and len(p) == 15 for p in prints)


async def capture_with_secrets(path: Path, url: str) -> None:
    """A capture of two real sessions, written with show_secrets (what redact must clean)."""
    writer = CaptureWriter(path, upstream=url, show_secrets=True)
    async with sniffing(url, extra=[writer], tap=[writer.tap]) as (sniffer, _records):
        await _secret_session(sniffer.url, ["polling"])
        await _secret_session(sniffer.url, ["polling", "websocket"])
    writer.close()


def _redact(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sio_sniffer", "redact", *args],
                          capture_output=True, text=True, timeout=60, check=False)


async def test_redact_removes_secrets_and_keeps_the_session(
        tmp_path: Path, py_server_factory: Any) -> None:
    """`redact` turns every secret of a --show-secrets capture into the same fingerprint the
    live capture would have stored, keeps everything else readable, and is idempotent."""
    server = await py_server_factory(secret_server)
    source, out = tmp_path / "cap.jsonl", tmp_path / "shared.jsonl"
    await capture_with_secrets(source, server.url)
    assert AUTH_TOKEN in source.read_text()
    done = await asyncio.to_thread(_redact, str(source), "-o", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    for secret in SECRETS:
        assert secret not in text
    assert fingerprint(BEARER) in text and fingerprint(COOKIE) in text
    assert fingerprint(AUTH_TOKEN) in text
    assert SECRET_ARG in text  # payloads stay unless asked
    before, after = CaptureReader(source), CaptureReader(out)
    items_before, items_after = list(before), list(after)
    assert not after.problems and len(items_after) == len(items_before)
    assert [type(i) for i in items_after] == [type(i) for i in items_before]
    assert after.header is not None and before.header is not None
    assert after.header.capture_id == before.header.capture_id
    assert not after.header.show_secrets
    again = tmp_path / "again.jsonl"
    assert (await asyncio.to_thread(_redact, str(out), "-o", str(again))).returncode == 0
    assert [_plain(i) for i in CaptureReader(again)] == [_plain(i) for i in items_after]


def _plain(item: Any) -> Any:
    return item.to_dict() if isinstance(item, Record) else item


async def test_redact_payloads(tmp_path: Path, py_server_factory: Any) -> None:
    """`redact --payloads` also replaces event arguments on the wire and in records, keeping
    event names, so the report of the copy shows the same events."""
    server = await py_server_factory(secret_server)
    source, out = tmp_path / "cap.jsonl", tmp_path / "shared.jsonl"
    await capture_with_secrets(source, server.url)
    done = await asyncio.to_thread(_redact, str(source), "-o", str(out), "--payloads")
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert SECRET_ARG not in text and fingerprint(SECRET_ARG) in text
    events = [i for i in CaptureReader(out) if isinstance(i, Record) and i.event == "sio.event"]
    assert events and all(e.name == "echo" for e in events)
    assert all(e.args == [fingerprint(SECRET_ARG)] for e in events)
    wire = [i for i in CaptureReader(out)
            if isinstance(i, (WsMessage, HttpRequest, HttpResponse)) and b"echo" in
            (i.payload if isinstance(i, WsMessage) else i.body)]
    assert wire and all(fingerprint(SECRET_ARG).encode() in
                        (i.payload if isinstance(i, WsMessage) else i.body) for i in wire)
    report = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "sio_sniffer", "report", "--json", str(out)],
        capture_output=True, text=True, timeout=60, check=False)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)


async def test_redact_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    """`redact FILE -o FILE` refuses (exit 2, file untouched); --in-place replaces the file."""
    source = tmp_path / "cap.jsonl"
    writer = CaptureWriter(source, show_secrets=True)
    writer.tap(HttpRequest(conn="c1", seq=0, ts=1.0, method="GET", target="/x", version="1.1",
                           headers=(("Cookie", COOKIE),), body=b""))
    writer.close()
    original = source.read_bytes()
    refused = await asyncio.to_thread(_redact, str(source), "-o", str(source))
    assert refused.returncode == 2 and "--in-place" in refused.stderr
    assert source.read_bytes() == original
    done = await asyncio.to_thread(_redact, str(source), "--in-place")
    assert done.returncode == 0, done.stderr
    assert "COOKIE-9f9f9f" not in source.read_text()
    assert fingerprint(COOKIE) in source.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["cap.jsonl"]


async def test_redact_reports_bad_lines(tmp_path: Path) -> None:
    """A capture with a corrupt line: the copy holds the good lines, the bad one is named with
    its line number, exit code 1; a file that is no capture is one line and exit code 2."""
    source = tmp_path / "cap.jsonl"
    writer = CaptureWriter(source, show_secrets=True)
    for seq in range(2):
        writer.tap(HttpRequest(conn="c1", seq=seq, ts=1.0, method="GET", target="/x",
                               version="1.1", headers=(("Cookie", COOKIE),), body=b""))
    writer.close()
    lines = source.read_bytes().splitlines(keepends=True)
    source.write_bytes(lines[0] + lines[1] + b'{"t": "http_request", "conn": \n' + lines[2])
    done = await asyncio.to_thread(_redact, str(source), "-o", str(tmp_path / "out.jsonl"))
    assert done.returncode == 1 and ":3:" in done.stderr
    assert len(list(CaptureReader(tmp_path / "out.jsonl"))) == 2
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    bad = await asyncio.to_thread(_redact, str(junk), "-o", str(tmp_path / "j.jsonl"))
    assert bad.returncode == 2 and "not a sio-sniffer capture" in bad.stderr
    assert "Traceback" not in bad.stderr


API_KEY = "APIKEY-0ld-5n1ff3r"
SIGNATURE = "SIG-0ld-5n1ff3r"


async def _legacy_capture(path: Path, url: str, *, header: dict[str, str] | None = None,
                          payload: Any = SECRET_ARG) -> None:
    """A capture as an older sniffer wrote it: plain header, query and auth values (the policy
    then knew only a few names) in a file whose first line says ``show_secrets: false``."""
    writer = CaptureWriter(path, upstream=url, show_secrets=True)
    async with sniffing(url, extra=[writer], tap=[writer.tap]) as (sniffer, _records):
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(f"{sniffer.url}?signature={SIGNATURE}",
                             transports=["polling", "websocket"], auth={"token": AUTH_TOKEN},
                             headers={"X-Api-Key": API_KEY, **(header or {})}, wait_timeout=10)
        assert await client.call("echo", payload, timeout=10) == [payload]
        await client.disconnect()
    writer.close()
    lines = path.read_text().splitlines(keepends=True)
    head = json.loads(lines[0])
    head["show_secrets"] = False
    path.write_text(json.dumps(head) + "\n" + "".join(lines[1:]))


async def test_redact_cleans_captures_of_older_sniffers(
        tmp_path: Path, py_server_factory: Any) -> None:
    """Plain X-Api-Key, ?signature= and CONNECT auth (polling body and WebSocket message) in a
    capture that says it holds no secrets: redact fingerprints them all, exit 0."""
    server = await py_server_factory(secret_server)
    source, out = tmp_path / "old.jsonl", tmp_path / "shared.jsonl"
    await _legacy_capture(source, server.url)
    assert API_KEY in source.read_text() and AUTH_TOKEN in source.read_text()
    done = await asyncio.to_thread(_redact, str(source), "-o", str(out))
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert [s for s in (API_KEY, SIGNATURE, AUTH_TOKEN) if s in text] == []
    assert all(fingerprint(s) in text for s in (API_KEY, SIGNATURE, AUTH_TOKEN))


async def test_redact_names_what_it_left(tmp_path: Path, py_server_factory: Any) -> None:
    """After redacting, the copy is scanned: a secret inside an event payload is a warning
    naming its lines (exit 0) unless --payloads fingerprints it; one the policy cannot see
    elsewhere (a password in a URL inside a header of no secret name) fails with the line
    numbers (exit 1); neither message shows the value."""
    server = await py_server_factory(secret_server)
    in_payload, in_header = tmp_path / "payload.jsonl", tmp_path / "header.jsonl"
    await _legacy_capture(in_payload, server.url, payload={"password": "PW-in-payload"})
    await _legacy_capture(in_header, server.url,
                          header={"X-Debug": "https://h.example/cb?password=PW-in-header"})

    warned = await asyncio.to_thread(_redact, str(in_payload), "-o", str(tmp_path / "a.jsonl"))
    assert warned.returncode == 0, warned.stderr
    assert "warning: event payloads" in warned.stderr and "'password'" in warned.stderr
    assert "line " in warned.stderr and "PW-in-payload" not in warned.stderr
    clean = await asyncio.to_thread(_redact, str(in_payload), "-o", str(tmp_path / "b.jsonl"),
                                    "--payloads")
    assert clean.returncode == 0 and "warning" not in clean.stderr, clean.stderr

    failed = await asyncio.to_thread(_redact, str(in_header), "-o", str(tmp_path / "c.jsonl"))
    assert failed.returncode == 1, failed.stderr
    lines = [n for n, line in enumerate((tmp_path / "c.jsonl").read_text().splitlines(), 1)
             if "PW-in-header" in line]
    assert lines and f"line {lines[0]}: 'password'" in failed.stderr
    assert "do not share it" in failed.stderr and "PW-in-header" not in failed.stderr
