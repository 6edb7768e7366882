"""The pipe between the relay and the observer process: what crosses it is what one process
would have seen, and an observer that falls too far behind costs copies, never traffic."""

from __future__ import annotations

import asyncio
import os

from sio_sniffer.model.tap import ConnClose, ConnOpen, TapError, TapEvent, WsMessage
from sio_sniffer.transport.channel import ChannelReader, ChannelWriter, PipeWriter
from sio_sniffer.transport.relay import TapLike
from sio_sniffer.transport.tap.connection import ConnectionTap

REQUEST = (b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n"
           b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
RESPONSE = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


def _frame(text: bytes) -> bytes:
    return bytes([0x81, len(text)]) + text


def _drive(tap: TapLike, conn: str) -> None:
    tap.emit(ConnOpen(conn=conn, ts=1.0, peer="127.0.0.1:1"))
    tap.data("in", REQUEST)
    tap.data("out", RESPONSE)
    # one frame split across two reads, then two frames in one read
    tap.data("out", _frame(b'42["a",1]')[:5])
    tap.data("out", _frame(b'42["a",1]')[5:] + _frame(b'42["b",2]') * 2)
    tap.eof("in")
    tap.emit(ConnClose(conn=conn, ts=2.0, by="client"))


def _kinds(events: list[TapEvent]) -> list[tuple[str, object]]:
    return [(type(e).__name__, getattr(e, "payload", None)) for e in events]


async def test_events_across_the_pipe_equal_one_process() -> None:
    """Framed raw copies, re-parsed on the other side, give the same tap events as parsing in
    the relay's own process."""
    direct: list[TapEvent] = []
    _drive(ConnectionTap("c1", direct.append, 1 << 20, lambda: 1.5), "c1")
    crossed: list[TapEvent] = []
    reader = ChannelReader(crossed.append, 1 << 20)
    pipe: list[bytes] = []
    writer = ChannelWriter(pipe.append, lambda: 0)
    _drive(writer.tap("c1"), "c1")
    writer.flush()
    blob = b"".join(pipe)
    for i in range(0, len(blob), 7):  # the pipe delivers arbitrary slices
        reader.feed(blob[i:i + 7])
    assert _kinds(crossed) == _kinds(direct)
    assert [e.payload for e in crossed if isinstance(e, WsMessage)] == \
        [b'42["a",1]', b'42["b",2]', b'42["b",2]']


async def test_a_full_pipe_drops_copies_and_says_so() -> None:
    """Past the limit the copies of a connection are dropped and counted; once the pipe drains
    the observer is told, the connection is no longer decoded, and other events still cross."""
    backlog = [10**9]
    pipe: list[bytes] = []
    writer = ChannelWriter(pipe.append, lambda: backlog[0], limit=1000)
    tap = writer.tap("c7")
    tap.emit(ConnOpen(conn="c7", ts=1.0, peer="127.0.0.1:1"))
    tap.data("in", REQUEST)
    assert writer.dropped == len(REQUEST)
    backlog[0] = 0
    tap.data("out", RESPONSE)
    tap.emit(ConnClose(conn="c7", ts=2.0, by="server"))
    writer.flush()
    seen: list[TapEvent] = []
    ChannelReader(seen.append, 1 << 20).feed(b"".join(pipe))
    errors = [e for e in seen if isinstance(e, TapError)]
    assert len(errors) == 1 and f"{len(REQUEST)} bytes" in errors[0].reason
    assert "forwarding was not affected" in errors[0].reason
    assert isinstance(seen[0], ConnOpen) and isinstance(seen[-1], ConnClose)
    assert not any(type(e).__name__ == "HttpResponse" for e in seen)


async def test_writes_are_batched_per_loop_turn() -> None:
    """Copies taken in one loop iteration leave in one write."""
    pipe: list[bytes] = []
    writer = ChannelWriter(pipe.append, lambda: 0)
    tap = writer.tap("c2")
    for _ in range(50):
        tap.data("in", b"x")
    assert pipe == []
    await asyncio.sleep(0)
    assert len(pipe) == 1


async def test_pipe_writer_queues_exactly_what_the_pipe_cannot_take_yet() -> None:
    """Through a real pipe whose reader is late: nothing is lost or reordered, the queue counts
    exactly the bytes not yet in the pipe, and close() waits for them before the reader's EOF."""
    read_fd, write_fd = os.pipe()
    writer = PipeWriter(write_fd)
    chunks = [bytes([n % 251]) * 50_000 for n in range(40)]  # 2 MB: more than the pipe holds
    for chunk in chunks:
        writer.write(chunk)
    assert 0 < writer.buffered() <= sum(map(len, chunks))
    got = bytearray()

    def read_all() -> None:
        with os.fdopen(read_fd, "rb") as pipe:
            while data := pipe.read(65536):
                got.extend(data)

    reading = asyncio.get_running_loop().run_in_executor(None, read_all)
    await asyncio.wait_for(writer.close(), 10)
    await asyncio.wait_for(reading, 10)
    assert writer.buffered() == 0
    assert bytes(got) == b"".join(chunks)


async def test_pipe_writer_to_a_gone_reader_drops_without_raising() -> None:
    """An observer that died takes nothing more; the relay side neither raises nor queues."""
    read_fd, write_fd = os.pipe()
    os.close(read_fd)
    writer = PipeWriter(write_fd)
    writer.write(b"x" * 100_000)
    writer.write(b"y")
    assert writer.buffered() == 0
    await asyncio.wait_for(writer.close(), 5)


async def test_pipe_writer_after_close_writes_nowhere() -> None:
    """A copy that arrives after close() (a connection outliving the relay's stop) is dropped,
    not written to whatever file took over the descriptor's number."""
    read_fd, write_fd = os.pipe()
    writer = PipeWriter(write_fd)
    await writer.close()
    os.close(read_fd)
    other_r, other_w = os.pipe()  # most likely the numbers just freed
    try:
        writer.write(b"late copy")
        os.set_blocking(other_r, False)
        try:
            leaked = os.read(other_r, 100)
        except BlockingIOError:
            leaked = b""
        assert leaked == b""
    finally:
        os.close(other_r)
        os.close(other_w)
