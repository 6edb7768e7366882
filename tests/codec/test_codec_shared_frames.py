"""A broadcast decoded once: sessions of one pipeline share the decoding of identical
server-to-client text frames, and the result is what each session would decode on its own."""

from __future__ import annotations

import socketio.packet

from sio_sniffer.codec import ErrorItem, SessionDecoder, SioItem
from sio_sniffer.codec.stream import SharedFrames


def _ws(pkt: socketio.packet.Packet) -> list[bytes]:
    """A python-socketio packet as WebSocket messages (Engine.IO "4" before the text part)."""
    encoded = pkt.encode()
    parts = encoded if isinstance(encoded, list) else [encoded]
    return [b"4" + p.encode() if isinstance(p, str) else p for p in parts]


def test_same_frame_to_many_clients_is_decoded_once() -> None:
    """Five sessions get the same event frame: one decoding, shared, equal to a session's own."""
    shared = SharedFrames()
    sessions = [SessionDecoder(shared=shared) for _ in range(5)]
    (frame,) = _ws(socketio.packet.Packet(socketio.packet.EVENT, ["update", {"n": 1}]))
    results = [s.websocket("out", frame, True) for s in sessions]
    assert all(r is results[0] for r in results)
    alone = SessionDecoder().websocket("out", frame, True)
    assert results[0] == alone
    (item,) = alone
    assert isinstance(item, SioItem) and item.packet.data == ["update", {"n": 1}]
    # client-to-server frames are each the sender's own: not shared
    assert sessions[0].websocket("in", frame, True) is not sessions[1].websocket("in", frame, True)


def test_binary_header_is_not_shared() -> None:
    """A BINARY_EVENT header leaves each session waiting for its own attachments."""
    shared = SharedFrames()
    a, b = SessionDecoder(shared=shared), SessionDecoder(shared=shared)
    header_a, attach_a = _ws(socketio.packet.Packet(socketio.packet.EVENT, ["bin", b"AAA"]))
    header_b, attach_b = _ws(socketio.packet.Packet(socketio.packet.EVENT, ["bin", b"BBB"]))
    assert header_a == header_b
    assert a.websocket("out", header_a, True) == []
    assert b.websocket("out", header_b, True) == []
    (got_b,) = b.websocket("out", attach_b, False)
    (got_a,) = a.websocket("out", attach_a, False)
    assert isinstance(got_a, SioItem) and got_a.packet.data == ["bin", b"AAA"]
    assert isinstance(got_b, SioItem) and got_b.packet.data == ["bin", b"BBB"]


def test_frame_while_attachments_pending_is_not_taken_from_the_table() -> None:
    """A session waiting for attachments reports the missing one before the shared frame's
    event, as it would alone."""
    shared = SharedFrames()
    a, b = SessionDecoder(shared=shared), SessionDecoder(shared=shared)
    (event,) = _ws(socketio.packet.Packet(socketio.packet.EVENT, ["plain", 1]))
    a.websocket("out", event, True)
    header, _ = _ws(socketio.packet.Packet(socketio.packet.EVENT, ["bin", b"x"]))
    assert b.websocket("out", header, True) == []
    error, item = b.websocket("out", event, True)
    assert isinstance(error, ErrorItem) and "never arrived" in error.error.reason
    assert isinstance(item, SioItem) and item.packet.data == ["plain", 1]


def test_large_frames_are_not_kept() -> None:
    """Frames over the size limit are decoded per session (the table stays small)."""
    shared = SharedFrames(max_frame=100)
    a, b = SessionDecoder(shared=shared), SessionDecoder(shared=shared)
    (big,) = _ws(socketio.packet.Packet(socketio.packet.EVENT, ["big", "x" * 200]))
    first, second = a.websocket("out", big, True), b.websocket("out", big, True)
    assert first == second and first is not second


def test_table_is_bounded() -> None:
    """The oldest frames leave the table past its size."""
    shared = SharedFrames(size=3)
    session = SessionDecoder(shared=shared)
    frames = [_ws(socketio.packet.Packet(socketio.packet.EVENT, ["e", n]))[0] for n in range(5)]
    for frame in frames:
        session.websocket("out", frame, True)
    assert shared.get(frames[0]) is None and shared.get(frames[1]) is None
    assert all(shared.get(f) is not None for f in frames[2:])
