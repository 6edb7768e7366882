"""A python-socketio client in its own process for the heartbeat test (argument: JSON options).

{url, n, pace}: connects over WebSocket, asks the server for a burst of ``n`` events and prints
{"event": "burst_done", "count"}; then waits for a line on stdin (the test has seen the pings it
wanted on the wire) and prints {"event": "result", "connected", "disconnects"} before leaving.
It runs apart from the relay so that neither one's CPU time delays the other's heartbeat.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import socketio


def out(obj: dict[str, Any]) -> None:
    print(json.dumps(obj), flush=True)


async def main(opts: dict[str, Any]) -> None:
    client = socketio.AsyncClient(reconnection=False)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    count = 0
    disconnects: list[str] = []

    def tick(i: int) -> None:
        nonlocal count
        if i == count:
            count += 1

    client.on("tick", tick)
    client.on("burst_done", lambda total: done.set_result(total))
    client.on("disconnect", lambda *reason: disconnects.append(repr(reason)))
    await client.connect(opts["url"], transports=["websocket"], wait_timeout=10)
    await client.emit("burst", (opts["n"], opts.get("pace")))
    await done
    out({"event": "burst_done", "count": count})
    await loop.run_in_executor(None, sys.stdin.readline)
    out({"event": "result", "connected": client.connected, "disconnects": disconnects})
    await client.disconnect()


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
