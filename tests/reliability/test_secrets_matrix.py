"""The secrets matrix: every secret name the policy lists, and two of the user's own
(``--secret-name``), sent by real clients (python-socketio with headers and query, the Node
socket.io-client with extraHeaders, query and auth, Chromium with cookies), through one
`sio-sniffer proxy` process; none may appear in clear in the JSON log, the capture, the redacted
capture, the report of the browser's HAR file (JSON and HTML), the live page's WebSocket
stream or the Admin UI's events, and each appears as the same fingerprint wherever it is shown.

One session per client kind with all the names at once, so the matrix costs one proxy run.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import socketio
from aiohttp import web
from playwright.async_api import async_playwright

from sio_sniffer.diagnostics.browser import CHROMIUM, CHROMIUM_ARGS
from sio_sniffer.model import fingerprint
from sio_sniffer.testing import free_port
from tests.paths import NODE_MODULES
from tests.reliability.test_process import proxy
from tests.transport.relay_peers import NodeProcess
from tests.web.adminui.adminui_peers import admin_client

OWN_NAMES = ("x-tenant", "^pin$")  # the user's own, via --secret-name
SECRET_HEADERS = ("Authorization", "Proxy-Authorization", "Cookie", "X-Api-Key", "X-Auth-Token",
                  "X-Csrf-Token", "X-Session-Id", "X-Tenant")
SECRET_QUERY = ("signature", "token", "csrf", "jwt", "session", "password", "pin")
SET_COOKIE = "srv=SETCOOKIE-c0ffee11; Path=/"
SIO_JS = NODE_MODULES / "socket.io-client" / "dist" / "socket.io.min.js"
# The browser's page: its own URL carries a token and a JWT (so Referer does too), the
# connection a query and an auth object; the cookies come from the browser context.
PAGE = """<!doctype html><title>matrix</title><script src="/sio.js"></script><script>
const q = new URLSearchParams(location.search);
const s = io({transports: ["polling", "websocket"], reconnection: false,
              query: {session: q.get("session")}, auth: {token: q.get("auth")}});
s.on("connect", () => {
  const go = () => s.emitWithAck("done", "browser").then(() => { document.title = "done"; });
  if (s.io.engine.transport.name === "websocket") go(); else s.io.engine.once("upgrade", go);
});
</script>"""


def _jwt(kind: str) -> str:
    # Shaped like a JWT (base64url header.payload.signature); no name gives it away.
    return f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOi{kind}Jib2IifQ.c2lnLW9mLX{kind}RoZS10b2tlbg"


def _value(kind: str, name: str) -> str:
    return f"{kind}-{name.lower()}-S3CR3T-77"


def _headers(kind: str) -> dict[str, str]:
    return {name: _value(kind, name) for name in SECRET_HEADERS}


def _query(kind: str) -> dict[str, str]:
    return {**{name: _value(kind, name) for name in SECRET_QUERY}, "state": _jwt(kind)}


def _auth(kind: str) -> dict[str, str]:
    return {"token": _value(kind, "auth.token"), "password": _value(kind, "auth.password")}


def upstream(sio: socketio.AsyncServer, app: web.Application) -> None:
    async def set_cookie(request: web.Request, response: web.StreamResponse) -> None:
        response.headers.add("Set-Cookie", SET_COOKIE)

    app.on_response_prepare.append(set_cookie)
    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def sio_js(request: web.Request) -> web.FileResponse:
        return web.FileResponse(SIO_JS)

    app.router.add_get("/page", page)
    app.router.add_get("/sio.js", sio_js)

    @sio.on("done")  # type: ignore[untyped-decorator]
    async def done(sid: str, marker: str) -> str:
        return "ok"


async def _python_client(url: str) -> None:
    query = "&".join(f"{k}={v}" for k, v in _query("py").items())
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(f"{url}?{query}", headers=_headers("py"), auth=_auth("py"),
                         transports=["polling", "websocket"], wait_timeout=10)
    assert await client.call("done", "python", timeout=10) == "ok"
    await client.disconnect()
    # python-socketio without auth sends ``40{}``: logged as no auth at all.
    bare = socketio.AsyncClient(reconnection=False)
    await bare.connect(url, transports=["websocket"], wait_timeout=10)
    assert await bare.call("done", "bare", timeout=10) == "ok"
    await bare.disconnect()


async def _node_client(url: str) -> None:
    client = await NodeProcess.start("secrets_client.js", {
        "url": url, "transports": ["polling", "websocket"], "extraHeaders": _headers("node"),
        "query": _query("node"), "auth": _auth("node"), "marker": "node"})
    await client.expect("done")
    assert await client.wait() == 0


async def _browser(url: str, har: Path) -> None:
    page_query = f"token={_value('web', 'token')}&jwt={_jwt('web')}" \
                 f"&session={_value('web', 'session')}&auth={_value('web', 'auth.token')}"
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM,
                                            args=list(CHROMIUM_ARGS))
        context = await chromium.new_context(record_har_path=str(har))
        await context.add_cookies([
            {"name": "sessionid", "value": _value("web", "sessionid"), "url": url},
            {"name": "csrftoken", "value": _value("web", "csrftoken"), "url": url}])
        page = await context.new_page()
        await page.goto(f"{url}/page?{page_query}")
        await page.wait_for_function("document.title === 'done'", timeout=20_000)
        await context.close()  # writes the HAR
        await chromium.close()


def _secrets() -> list[str]:
    values = [SET_COOKIE.split(";")[0].split("=")[1]]
    for kind in ("py", "node"):
        values += [*_headers(kind).values(), *_query(kind).values(), *_auth(kind).values()]
    values += [_value("web", n) for n in ("token", "session", "auth.token", "sessionid",
                                           "csrftoken")] + [_jwt("web")]
    return values


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sio_sniffer", *args], capture_output=True,
                          text=True, timeout=60, check=False)


async def _collect_live(url: str, into: list[str]) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{url}/ws", origin=url) as ws:
        async for message in ws:
            into.append(message.data)


async def test_no_secret_in_clear_in_any_output(tmp_path: Path, py_server_factory: Any) -> None:
    server = await py_server_factory(upstream)
    log, capture, har = tmp_path / "log.jsonl", tmp_path / "cap.jsonl", tmp_path / "page.har"
    ui_port, admin_port = free_port(), free_port()
    own = [a for name in OWN_NAMES for a in ("--secret-name", name)]
    live: list[str] = []
    async with proxy(server.url, "--log", str(log), "--capture", str(capture),
                     "--ui", str(ui_port), "--admin-ui", str(admin_port), *own) as sniffer:
        ui_url = f"http://127.0.0.1:{ui_port}"
        watcher = asyncio.create_task(_collect_live(ui_url, live))
        admin, inbox = await admin_client(f"http://127.0.0.1:{admin_port}", None)
        await _python_client(sniffer.url)
        await _node_client(sniffer.url)
        await _browser(sniffer.url, har)
        for marker in ("python", "bare", "node", "browser"):
            await inbox.expect("event_received", lambda _n, _s, args, _t, m=marker:
                               args == ["done", m])
        sockets = [args[0] for args in inbox.find("socket_connected")]
        await admin.disconnect()
        code, stderr = await sniffer.stop(2)
        watcher.cancel()
    assert code == 0, stderr
    redacted = tmp_path / "shared.jsonl"
    done = await asyncio.to_thread(_cli, "redact", str(capture), "-o", str(redacted), *own)
    assert done.returncode == 0, done.stderr
    assert "still hold" not in done.stderr  # nothing secret-looking left, payloads included
    html = tmp_path / "har.html"
    har_json = await asyncio.to_thread(_cli, "report", str(har), "--json", *own)
    har_html = await asyncio.to_thread(_cli, "report", str(har), "--html", str(html), *own)
    assert har_json.returncode in (0, 1) and har_html.returncode in (0, 1), har_json.stderr
    har_text = har.read_text()
    assert _value("web", "sessionid") in har_text  # the HAR itself is the browser's, in clear

    outputs = {"log": log.read_text(), "capture": capture.read_text(),
               "redacted": redacted.read_text(), "har report": har_json.stdout,
               "har html": html.read_text(), "live page": "\n".join(live),
               "admin ui": json.dumps([item for item in inbox.items], default=repr)}
    assert all(outputs.values()), [k for k, v in outputs.items() if not v]
    leaks = [(where, secret) for where, text in outputs.items() for secret in _secrets()
             if secret in text]
    assert leaks == []

    def shown(fp: str, *where: str) -> list[str]:
        return [w for w in where if fp not in outputs[w]]

    for kind in ("py", "node"):
        for value in _auth(kind).values():
            fp = fingerprint(value)
            assert shown(fp, "log", "capture", "redacted", "live page", "admin ui") == [], value
        for value in [*_headers(kind).values(), *_query(kind).values()]:
            fp = fingerprint(value)
            assert shown(fp, "capture", "redacted", "admin ui") == [], value
    assert shown(fingerprint(_value("web", "auth.token")), "log", "capture", "redacted",
                 "live page", "admin ui", "har html") == []
    for name in ("token", "session"):
        assert shown(fingerprint(_value("web", name)), "capture", "redacted") == [], name
    assert shown(fingerprint(SET_COOKIE), "capture", "redacted") == []
    # Everything the sniffer wrote may hold payloads: owner-only.
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in (log, capture, redacted, html)} == \
        {p.name: "0o600" for p in (log, capture, redacted, html)}

    connects = [r for r in map(json.loads, outputs["log"].splitlines())
                if r["event"] == "sio.connect"]
    by_keys = {tuple(c["auth_keys"]): c["auth"] for c in connects}
    assert by_keys[()] is None  # the bare python-socketio client: 40{}, no fingerprint
    assert by_keys[("password", "token")] in [
        {k: fingerprint(v) for k, v in _auth(kind).items()} for kind in ("py", "node")]
    assert {s["handshake"]["auth"].get("token") for s in sockets} >= {
        fingerprint(_auth("py")["token"]), fingerprint(_auth("node")["token"])}
