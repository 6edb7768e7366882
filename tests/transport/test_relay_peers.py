"""Real Socket.IO peers through the relay: what the clients get equals what they get directly."""

from __future__ import annotations

import gzip

import pytest

from sio_sniffer.model.tap import (
    ConnClose,
    ConnOpen,
    HttpRequest,
    HttpResponse,
    TapError,
    WsMessage,
    WsOpen,
    header,
)
from tests.transport.relay_peers import (
    NodeProcess,
    Tap,
    node_full,
    node_server,
    py_full,
    py_server,
    relay_to,
    relay_url,
    ws_text,
)

TRANSPORTS = {
    "polling": ["polling"],
    "websocket": ["websocket"],
    "upgrade": ["polling", "websocket"],
}


def decoded_body(response: HttpResponse) -> bytes:
    """The tap keeps bodies as sent; Node gzips polling answers over 1 KiB."""
    if header(response.headers, "content-encoding") == "gzip":
        return gzip.decompress(response.body)
    return response.body


def assert_tap_saw_session(tap: Tap, mode: str) -> None:
    """The tap parsed the session cleanly and saw the traffic the transport implies."""
    assert tap.of(TapError) == []
    assert len(tap.of(ConnOpen)) == len(tap.of(ConnClose)) > 0
    requests = tap.of(HttpRequest)
    responses = tap.of(HttpResponse)
    assert all(r.target.startswith("/socket.io/") for r in requests)
    # every answered request is paired with the request it answers
    assert all(r.request.seq == r.seq for r in responses)
    polling_bodies = b"".join(
        decoded_body(r) for r in responses if "transport=polling" in r.request.target)
    ws_out = b"".join(m.payload for m in tap.of(WsMessage) if m.dir == "out")
    seen = polling_bodies + ws_out
    assert b'"welcome"' in seen and b'"bin_back"' in seen and b"x" * 20000 in seen
    opens = tap.of(WsOpen)
    if mode == "polling":
        assert opens == [] and polling_bodies
    elif mode == "websocket":
        assert len(opens) == 2 and "sid=" not in opens[0].request.target  # the refused client too
    else:
        assert any("sid=" in o.request.target for o in opens)


@pytest.mark.parametrize("mode", list(TRANSPORTS))
async def test_py_client_to_node_server(mode: str) -> None:
    """A python-socketio client gets the same events, acks and bytes from Node through the relay."""
    tap = Tap()
    async with node_server() as (url, _server):
        direct = await py_full(url, TRANSPORTS[mode])
        async with relay_to(url, tap) as relay:
            relayed = await py_full(relay_url(relay), TRANSPORTS[mode])
    assert relayed == direct
    assert relayed["transport"] == ("polling" if mode == "polling" else "websocket")
    assert relayed["connect_error /admin"] == "bad token"
    assert relayed["welcome /admin"] == {"nsp": "/admin", "auth": {"token": "s3cret", "n": 1}}
    assert_tap_saw_session(tap, mode)


@pytest.mark.parametrize("mode", list(TRANSPORTS))
async def test_node_client_to_py_server(mode: str) -> None:
    """A Node socket.io-client gets the same from python-socketio through the relay as directly."""
    tap = Tap()
    async with py_server() as (url, _sio):
        direct = await node_full(url, TRANSPORTS[mode])
        async with relay_to(url, tap) as relay:
            relayed = await node_full(relay_url(relay), TRANSPORTS[mode])
    assert relayed["transcript"] == direct["transcript"]
    transcript = relayed["transcript"]
    assert transcript["transport"] == ("polling" if mode == "polling" else "websocket")
    assert transcript["connect_error /admin"] == "bad token"
    assert transcript["bin_back /"] == [
        {"$bin": "feff020100"}, {"nested": [{"$bin": "000102fffe"}]}]
    assert_tap_saw_session(tap, mode)


def eio_messages(frames: list[dict[str, str]]) -> list[dict[str, str]]:
    """Engine.IO message packets (text ``4...`` or binary) from a frame list."""
    return [f for f in frames if "bin" in f or f["text"].startswith("4")]


def tap_frames(tap: Tap, conn: str, dir: str) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for m in tap.of(WsMessage):
        if m.conn == conn and m.dir == dir:
            out.append({"text": m.payload.decode()} if m.opcode == 1 else {"bin": m.payload.hex()})
    return out


async def test_permessage_deflate_is_inflated_on_the_copy() -> None:
    """Compression on both ways: the tap's messages equal the decompressed Engine.IO packets."""
    tap = Tap()
    async with node_server(perMessageDeflate={"threshold": 0}) as (url, _server):
        direct = await node_full(url, ["websocket"], perMessageDeflate={"threshold": 0})
        async with relay_to(url, tap) as relay:
            relayed = await node_full(relay_url(relay), ["websocket"],
                                      perMessageDeflate={"threshold": 0})
    assert relayed["transcript"] == direct["transcript"]
    opens = tap.of(WsOpen)
    assert opens and all(o.deflate for o in opens)
    session = opens[0].conn
    assert tap.of(TapError) == []
    tap_in = eio_messages(tap_frames(tap, session, "in"))
    tap_out = eio_messages(tap_frames(tap, session, "out"))
    sent, received = eio_messages(relayed["sent"]), eio_messages(relayed["received"])
    assert tap_out[:len(received)] == received and received
    assert tap_in[:len(sent)] == sent and sent
    # the 20,000-character echo crossed compressed both ways and was inflated for the tap
    big = [m for m in tap.of(WsMessage) if m.conn == session and len(m.payload) > 20000]
    assert {m.dir for m in big} == {"in", "out"}
    assert all(m.wire_size < 1000 for m in big)
    assert all(b'"' + b"x" * 20000 + b'"' in m.payload for m in big)


@pytest.mark.parametrize("client", ["node", "py"])
async def test_fast_heartbeat_survives_a_burst_through_the_relay(client: str) -> None:
    """pingInterval 300 ms / pingTimeout 200 ms: 10,000 events and the pings after them, no drop."""
    tap = Tap()
    async with node_server(pingInterval=300, pingTimeout=200) as (url, server), relay_to(
        url, tap
    ) as relay:
        # The server sends the 10,000 events at 10,000/s (3,000 between two pings). Unpaced, the
        # clients fall behind on a loaded 2-core machine (python-socketio handles ~15,000
        # events/s at best) and a ping waits behind the backlog longer than 200 ms, with or
        # without a relay; the server's own loop of 10,000 emits also holds up its ping timer.
        pace = {"batch": 100, "everyMs": 10}
        if client == "node":
            proc = await NodeProcess.start("peer_client.js", {
                "url": relay_url(relay), "transports": ["websocket"], "scenario": "burst",
                "n": 10000, "pace": pace,
            })
            try:
                assert (await proc.expect("burst_done", 60))["count"] == 10000
                assert (await proc.expect("pings"))["connected"] is True
                assert await proc.wait() == 0
            finally:
                proc.kill()
            assert [e for e in proc.seen if e["event"] == "disconnect"] == [
                {"event": "disconnect", "reason": "io client disconnect"}]
        else:
            proc = await NodeProcess.start_python("py_burst_client.py", {
                "url": relay_url(relay), "n": 10000, "pace": pace,
            })
            try:
                assert (await proc.expect("burst_done", 60))["count"] == 10000
                # the client cannot report pings: watch them pass on the wire
                for _ in range(3):
                    await tap.wait_new(lambda e: ws_text(e, "out") == "2", timeout=5)
                    await tap.wait_new(lambda e: ws_text(e, "in") == "3", timeout=5)
                assert proc.proc.stdin is not None
                proc.proc.stdin.write(b"done\n")
                result = await proc.expect("result")
                assert await proc.wait() == 0
            finally:
                proc.kill()
            assert result == {"event": "result", "connected": True, "disconnects": []}
        closed = await server.expect("disconnect")
    # a clean goodbye, whichever the server notices first: python-socketio closes its
    # WebSocket right behind the DISCONNECT packet (which one wins differs between versions)
    expected = {"client namespace disconnect"} if client == "node" else {
        "client namespace disconnect", "transport close"}
    assert closed["reason"] in expected
    assert tap.of(TapError) == []
    ticks = [m for m in tap.of(WsMessage) if m.dir == "out" and m.payload.startswith(b'42["tick"')]
    assert len(ticks) == 10000
