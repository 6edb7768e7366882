"""The live proxy's record chain: a sink that raises is switched off and reported once, while
the traffic, the analysis and the other sinks go on."""

from __future__ import annotations

from typing import Any

import socketio
from aiohttp import web

from sio_sniffer import model
from sio_sniffer.analysis import AnalysisConfig
from sio_sniffer.model import Record
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer


async def _echo(sid: str, data: Any) -> Any:
    return data


def _setup(sio: socketio.AsyncServer, app: web.Application) -> None:
    sio.on("echo", _echo)


async def test_a_raising_record_sink_is_switched_off_and_traffic_flows(
        py_server_factory: Any) -> None:
    server = await py_server_factory(_setup)
    heard: list[Record] = []
    good: list[Record] = []
    reports: list[str] = []

    def broken(rec: Record) -> None:
        heard.append(rec)
        raise RuntimeError("sink bug")

    config = ProxyConfig(listen=[("127.0.0.1", 0)], upstream=server.url,
                         analysis=AnalysisConfig())
    sniffer = Sniffer(config, sinks=[broken, good.append], report=reports.append)
    await sniffer.start()
    try:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(sniffer.url, transports=["websocket"], wait_timeout=5)
        for n in range(3):
            assert await client.call("echo", {"n": n}, timeout=5) == {"n": n}
        await client.disconnect()
    finally:
        await sniffer.stop()
    assert len(heard) == 1
    assert len(reports) == 1
    assert "record sink broken failed and was switched off" in reports[0]
    assert "RuntimeError: sink bug" in reports[0]
    echoes = [r for r in good if r.event == model.SIO_EVENT and r.name == "echo"]
    assert len(echoes) == 3
    assert any(r.event == model.SUMMARY for r in good)
