"""The Admin UI bridge speaks the /admin protocol of @socket.io/admin-ui from sniffed traffic:
checked with a python-socketio client on /admin, the Sniffer in front of a real python-socketio
server, and real python-socketio and Node socket.io clients."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import socketio

from sio_sniffer.model import fingerprint
from tests.web.adminui.adminui_peers import (
    PASSWORD,
    TOKEN,
    USER,
    NodeClient,
    admin_client,
    rig,
)

CREDENTIALS = {"username": USER, "password": PASSWORD}


async def test_basic_auth_is_enforced_and_sessions_resume(py_server_factory: Any) -> None:
    """Without credentials or with a wrong password /admin is refused with "invalid
    credentials"; the right ones get a session id that alone lets the UI reconnect."""
    async with rig(py_server_factory, username=USER, password=PASSWORD) as r:
        for auth in (None, {"username": USER, "password": "wrong"}, {"sessionId": "made-up"}):
            client = socketio.AsyncClient(reconnection=False)
            errors: list[Any] = []
            client.on("connect_error", errors.append, namespace="/admin")
            with pytest.raises(socketio.exceptions.ConnectionError):
                await client.connect(r.bridge.url, namespaces=["/admin"], auth=auth,
                                     transports=["websocket"])
            assert errors == [{"message": "invalid credentials"}]
        admin, inbox = await admin_client(r.bridge.url, CREDENTIALS)
        (session,) = await inbox.expect("session")
        (config,) = await inbox.expect("config")
        assert config == {"supportedFeatures": ["AGGREGATED_EVENTS", "ALL_EVENTS"]}
        await inbox.expect("all_sockets")
        await admin.disconnect()
        again, inbox2 = await admin_client(r.bridge.url, {"sessionId": session})
        await inbox2.expect("config")
        assert not inbox2.find("session")
        await again.disconnect()


async def test_sockets_rooms_events_and_stats_reach_the_admin(py_server_factory: Any) -> None:
    """Sockets on two namespaces appear with id = Socket.IO sid, clientId = Engine.IO sid,
    transport and a handshake whose auth is only a fingerprint; events both ways arrive as
    event_received / event_sent; the inferred room becomes room_joined; server_stats counts
    clients and namespaces; a disconnect is socket_disconnected; a late admin gets the
    snapshot and the recent events."""
    async with rig(py_server_factory) as r:
        admin, inbox = await admin_client(r.bridge.url, None)
        await inbox.expect("config")
        (initial,) = await inbox.expect("all_sockets")
        assert initial == []

        a = await r.client(["/", "/chat"], "blue")
        b = await r.client(["/chat"], "blue", transports=["websocket"])
        c = await r.client(["/chat"], "red", transports=["polling"])
        sockets: dict[tuple[str, str], dict[str, Any]] = {}
        for client, nsps in ((a, ["/", "/chat"]), (b, ["/chat"]), (c, ["/chat"])):
            for nsp in nsps:
                sid = client.get_sid(nsp)
                sock, stamp = await inbox.expect("socket_connected",
                                                 lambda s, *_, sid=sid: s["id"] == sid)
                assert sock["nsp"] == nsp
                assert sock["clientId"] == client.eio.sid
                assert sock["transport"] == client.transport()
                assert sock["rooms"][0] == sid
                assert stamp.endswith("Z")
                sockets[(nsp, sid)] = sock
        hs = sockets[("/chat", c.get_sid("/chat"))]["handshake"]
        assert hs["address"] == "127.0.0.1"
        assert hs["query"]["EIO"] == "4" and hs["query"]["transport"] == "polling"
        assert "python" in hs["headers"]["user-agent"].lower()
        assert hs["auth"] == {"token": fingerprint(TOKEN), "team": fingerprint("red")}
        assert TOKEN not in repr(sockets)

        ack = await a.call("echo", {"n": 1})
        assert ack == {"ok": True}
        sid_a = a.get_sid("/")
        nsp, sid, args, _ = await inbox.expect(
            "event_received", lambda n, s, ar, t: ar[0] == "echo")
        assert (nsp, sid, args) == ("/", sid_a, ["echo", {"n": 1}])
        nsp, sid, args, _ = await inbox.expect(
            "event_sent", lambda n, s, ar, t: ar[0] == "echoed")
        assert (nsp, sid, args) == ("/", sid_a, ["echoed", {"n": 1}])

        for i in range(3):
            await a.emit("shout", {"i": i}, namespace="/chat")
        blue = {a.get_sid("/chat"), b.get_sid("/chat")}
        joined = set()
        for sid in blue:
            nsp, room, who, _ = await inbox.expect(
                "room_joined", lambda n, rm, s, t, sid=sid: s == sid)
            assert (nsp, who) == ("/chat", sid) and room.startswith("~shouted#")
            joined.add(room)
        assert len(joined) == 1
        assert not inbox.find("room_joined", lambda n, rm, s, t: s == c.get_sid("/chat"))
        sent = inbox.find("event_sent", lambda n, s, ar, t: ar[0] == "shouted")
        assert {s for _, s, _, _ in sent} == blue

        (stats,) = await inbox.expect(
            "server_stats", lambda st: st["clientsCount"] == 3
            and any(e["type"] == "packetsIn" for e in st["aggregatedEvents"]))
        assert stats["pollingClientsCount"] == 1
        assert {n["name"]: n["socketsCount"] for n in stats["namespaces"]} == {"/": 1, "/chat": 3}
        assert stats["serverId"] and stats["pid"] > 0 and stats["uptime"] >= 0

        sid_c = c.get_sid("/chat")
        await c.disconnect()
        nsp, sid, reason, _ = await inbox.expect("socket_disconnected")
        assert (nsp, sid, reason) == ("/chat", sid_c, "client namespace disconnect")

        late, late_inbox = await admin_client(r.bridge.url, None)
        (snapshot,) = await late_inbox.expect("all_sockets")
        assert {(s["nsp"], s["id"]) for s in snapshot} == {
            ("/", sid_a), ("/chat", a.get_sid("/chat")), ("/chat", b.get_sid("/chat"))}
        rooms = {s["id"]: s["rooms"] for s in snapshot}
        assert rooms[a.get_sid("/chat")][1:] == sorted(joined)
        await late_inbox.expect("event_received", lambda n, s, ar, t: ar[0] == "echo")
        await late.disconnect()
        await admin.disconnect()


async def test_upgrade_after_connect_is_socket_updated(py_server_factory: Any) -> None:
    """A Node socket.io-client connects its namespace on polling and then upgrades: the admin
    sees socket_connected with "polling", then socket_updated with "websocket"."""
    async with rig(py_server_factory) as r:
        admin, inbox = await admin_client(r.bridge.url, None)
        await inbox.expect("all_sockets")
        node = await NodeClient.start(r.sniffer.url, "/chat", {"token": TOKEN, "team": "red"})
        try:
            hello = await node.line("connected")
            sock, _ = await inbox.expect("socket_connected",
                                         lambda s, *_: s["id"] == hello["sid"])
            assert (sock["nsp"], sock["clientId"]) == ("/chat", hello["eioSid"])
            assert sock["transport"] == "polling"
            await node.line("upgraded")
            (update,) = await inbox.expect("socket_updated")
            assert update == {"id": hello["sid"], "nsp": "/chat", "transport": "websocket"}
            assert (await node.line("hi"))["data"] == {"to": "node"}
            await inbox.expect("event_received",
                               lambda n, s, ar, t: s == hello["sid"] and ar == ["hello", "node"])
            await inbox.expect("event_sent", lambda n, s, ar, t: s == hello["sid"]
                               and ar == ["hi", {"to": "node"}])
        finally:
            await node.stop()
        await inbox.expect("socket_disconnected", lambda n, s, *_: s == hello["sid"])
        await admin.disconnect()


async def test_write_actions_are_refused(py_server_factory: Any) -> None:
    """The UI's emit/join/leave/_disconnect requests are answered with an error and change
    nothing: the client stays connected and its events keep flowing."""
    reports: list[str] = []
    async with rig(py_server_factory, report=reports.append) as r:
        admin, inbox = await admin_client(r.bridge.url, None)
        await inbox.expect("all_sockets")
        a = await r.client(["/"], "blue")
        await inbox.expect("socket_connected")
        for action, args in (("_disconnect", ("/", True, a.get_sid("/"))),
                             ("emit", ("/", None, "echoed", "injected")),
                             ("join", ("/", "x", a.get_sid("/"))),
                             ("leave", ("/", "x", a.get_sid("/")))):
            answer = await admin.call(action, args, namespace="/admin", timeout=5)
            assert "read-only" in answer["error"]
        assert r.bridge.refused == 4
        assert len(reports) == 4 and all("read-only" in m for m in reports)
        echoed: asyncio.Queue[Any] = asyncio.Queue()
        a.on("echoed", echoed.put)
        await a.emit("echo", "still here")
        assert await asyncio.wait_for(echoed.get(), 5) == "still here"
        assert a.connected
        assert not inbox.find("room_joined") and not inbox.find("socket_disconnected")
        await admin.disconnect()


async def test_vanished_polling_client_is_disconnected_after_the_heartbeat_limit(
        py_server_factory: Any) -> None:
    """A polling client killed without goodbye leaves nothing on the wire; once it has been
    silent past pingInterval + pingTimeout (+ grace) its socket is socket_disconnected."""
    async with rig(py_server_factory, silence_grace=0.5) as r:
        admin, inbox = await admin_client(r.bridge.url, None)
        await inbox.expect("all_sockets")
        node = await NodeClient.start(r.sniffer.url, "/chat", {"token": TOKEN, "team": "red"},
                                      polling_only=True)
        hello = await node.line("connected")
        await inbox.expect("socket_connected", lambda s, *_: s["id"] == hello["sid"])
        await node.kill()
        nsp, sid, reason, _ = await inbox.expect("socket_disconnected", timeout=15)
        assert (nsp, sid) == ("/chat", hello["sid"])
        assert reason.startswith("ping timeout")
        # The first server_stats (before the client came) had no namespace at all.
        await inbox.expect("server_stats", lambda st: st["clientsCount"] == 0
                           and st["namespaces"] == [{"name": "/chat", "socketsCount": 0}])
        await admin.disconnect()
