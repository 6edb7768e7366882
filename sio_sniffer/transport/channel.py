"""Copies of relayed traffic shipped to the observer process through a pipe.

The relay process must spend as little as possible per chunk: it frames the raw bytes it just
forwarded (no HTTP or WebSocket parsing) and writes the frames of one loop iteration in one
write. The observer process reads the frames and runs the real tap parsers
(:class:`~sio_sniffer.transport.tap.ConnectionTap`) with the timestamps the relay took, so
the records are the same as in one process.

If the observer falls so far behind that the relay's queue for it (:class:`PipeWriter`, beyond
the pipe's own 1 MiB) passes ``limit``, copies are dropped
(traffic never waits for the observer) and each connection that lost bytes is marked with a gap;
the observer then stops parsing that connection and says so with a TapError.

Frame: ``op`` (1 byte), ``dir`` (1 byte: 0 in, 1 out), ``ts`` (float64), ``conn`` length (2
bytes) and ``payload`` length (4 bytes), then conn (UTF-8) and payload. Events (connection open
and close, upstream errors) travel pickled: the pipe is private to our own two processes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import pickle
import struct
import time
from collections.abc import Callable

from sio_sniffer.model.tap import ConnClose, Direction, TapError, TapEvent
from sio_sniffer.transport.tap.connection import ConnectionTap

_HEAD = struct.Struct("<BBdHI")
OP_DATA, OP_EOF, OP_EVENT, OP_GAP = 1, 2, 3, 4
_DIRS: tuple[Direction, Direction] = ("in", "out")
_DIR_CODE = {"in": 0, "out": 1}
DEFAULT_LIMIT = 256 * 1024 * 1024
PIPE_SIZE = 1024 * 1024


class ChannelWriter:
    """The relay side. ``write`` takes the frames of each loop turn (a :class:`PipeWriter`'s
    write); ``buffered`` says how many bytes wait for the observer."""

    def __init__(self, write: Callable[[bytearray], None], buffered: Callable[[], int], *,
                 limit: int = DEFAULT_LIMIT, clock: Callable[[], float] = time.time) -> None:
        self._write = write
        self._buffered = buffered
        self._limit = limit
        self._clock = clock
        self._batch = bytearray()
        self._scheduled = False
        self._gapped: dict[str, int] = {}  # conn -> bytes dropped since the last gap frame
        self.dropped = 0

    def tap(self, conn: str) -> ChannelTap:
        return ChannelTap(conn, self)

    def put(self, op: int, conn: str, dir: Direction, payload: bytes) -> None:
        if op == OP_DATA and self._buffered() > self._limit:
            self._gapped[conn] = self._gapped.get(conn, 0) + len(payload)
            self.dropped += len(payload)
            return
        if self._gapped:
            self._send_gaps()
        name = conn.encode()
        batch = self._batch
        batch += _HEAD.pack(op, _DIR_CODE[dir], self._clock(), len(name), len(payload))
        batch += name
        batch += payload
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def _send_gaps(self) -> None:
        gapped, self._gapped = self._gapped, {}
        for conn, lost in gapped.items():
            name = conn.encode()
            payload = str(lost).encode()
            self._batch += _HEAD.pack(OP_GAP, 0, self._clock(), len(name), len(payload))
            self._batch += name
            self._batch += payload

    def flush(self) -> None:
        self._scheduled = False
        if self._batch:
            # the frames of one loop turn, built in place and handed over as they are
            data, self._batch = self._batch, bytearray()
            self._write(data)


class PipeWriter:
    """Writes to the observer's pipe: straight to the file descriptor while the pipe takes it,
    queued here (exactly counted) while it does not.

    Not the loop's own pipe transport: under uvloop a relay with 64 MiB queued in one grew by
    127 MB (95 MB with this writer; 71 MB on asyncio), and ``--observer-buffer`` is meant as a
    bound. The pipe's kernel buffer is raised to 1 MiB where Linux allows, which saves wake-ups.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        os.set_blocking(fd, False)
        with contextlib.suppress(ImportError, AttributeError, OSError):
            import fcntl  # Linux only: F_SETPIPE_SZ

            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self._queue: collections.deque[memoryview] = collections.deque()
        self._size = 0
        self._waiting = False
        self._broken = False
        self._drained: asyncio.Future[None] | None = None

    def buffered(self) -> int:
        return self._size

    def write(self, data: bytes | bytearray) -> None:
        if self._broken or not data:
            return
        view = memoryview(data)
        if not self._queue:
            view = view[self._send(view):]
            if not view or self._broken:
                return
        self._queue.append(view)
        self._size += len(view)
        if not self._waiting:
            self._waiting = True
            asyncio.get_running_loop().add_writer(self._fd, self._drain)

    def _send(self, view: memoryview) -> int:
        try:
            return os.write(self._fd, view)
        except BlockingIOError:
            return 0
        except OSError:
            # the observer process is gone: nothing more can reach it, and traffic goes on
            self._broken = True
            self._queue.clear()
            self._size = 0
            return len(view)

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            view = queue[0]
            sent = self._send(view)
            if self._broken:
                break
            self._size -= sent
            if sent < len(view):
                queue[0] = view[sent:]
                return
            queue.popleft()
        asyncio.get_running_loop().remove_writer(self._fd)
        self._waiting = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def close(self) -> None:
        """Write out what is queued (the observer works it off), then close the pipe. Later
        writes are dropped: the descriptor's number may belong to another file by then."""
        try:
            if self._queue and not self._broken:
                self._drained = asyncio.get_running_loop().create_future()
                await self._drained
        finally:
            if self._waiting:
                asyncio.get_running_loop().remove_writer(self._fd)
                self._waiting = False
            self._broken = True
            self._queue.clear()
            self._size = 0
            os.close(self._fd)


class ChannelTap:
    """Stands in for a ConnectionTap in the relay: same three verbs, no parsing."""

    __slots__ = ("_conn", "_put")

    def __init__(self, conn: str, writer: ChannelWriter) -> None:
        self._conn = conn
        self._put = writer.put

    def data(self, dir: Direction, data: bytes) -> None:
        self._put(OP_DATA, self._conn, dir, data)

    def eof(self, dir: Direction) -> None:
        self._put(OP_EOF, self._conn, dir, b"")

    def emit(self, event: TapEvent) -> None:
        self._put(OP_EVENT, self._conn, "in", pickle.dumps(event))


class ChannelReader:
    """The observer side: frames in, tap events out (through real ConnectionTaps)."""

    def __init__(self, on_event: Callable[[TapEvent], None], body_limit: int) -> None:
        self._on_event = on_event
        self._body_limit = body_limit
        # What the relay forwarded per direction, as far as copies of it arrived, and the bytes
        # of copies it dropped (the metrics read both)
        self.relayed: dict[Direction, int] = {"in": 0, "out": 0}
        self.dropped = 0
        self._taps: dict[str, ConnectionTap] = {}
        self._buf = bytearray()
        self._ts = 0.0

    def _clock(self) -> float:
        return self._ts

    def _tap(self, conn: str) -> ConnectionTap:
        tap = self._taps.get(conn)
        if tap is None:
            tap = self._taps[conn] = ConnectionTap(conn, self._on_event, self._body_limit,
                                                   self._clock, self.relayed)
        return tap

    def feed(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        pos = 0
        size = len(buf)
        head = _HEAD.size
        while size - pos >= head:
            op, dir_code, ts, name_len, payload_len = _HEAD.unpack_from(buf, pos)
            end = pos + head + name_len + payload_len
            if end > size:
                break
            start = pos + head
            conn = bytes(buf[start:start + name_len]).decode()
            payload = bytes(buf[start + name_len:end])
            pos = end
            self._ts = ts
            self._dispatch(op, conn, _DIRS[dir_code], ts, payload)
        del buf[:pos]

    def _dispatch(self, op: int, conn: str, dir: Direction, ts: float, payload: bytes) -> None:
        if op == OP_DATA:
            self._tap(conn).data(dir, payload)
        elif op == OP_EOF:
            self._tap(conn).eof(dir)
        elif op == OP_EVENT:
            event = pickle.loads(payload)
            self._tap(conn).emit(event)
            if isinstance(event, ConnClose):
                self._taps.pop(conn, None)
        elif op == OP_GAP:
            self.dropped += int(payload)
            tap = self._tap(conn)
            tap.mode = {"in": "raw", "out": "raw"}
            tap.emit(TapError(
                conn=conn, ts=ts, dir=dir, layer="http", raw=b"",
                reason=f"the analysis fell behind and {payload.decode()} bytes of this "
                       "connection were not analysed (forwarding was not affected); the rest of "
                       "this connection is not decoded"))
