"""The Sniffer between the Node socket.io server and socket.io-client: msgpack parser and
permessage-deflate decode into the same records as the default parser."""

from __future__ import annotations

from typing import Any

import pytest

from sio_sniffer.model import Record, fingerprint
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from tests.transport.relay_peers import NodeProcess, node_server


@pytest.mark.parametrize(("msgpack", "deflate"), [(True, False), (False, True), (True, True)])
@pytest.mark.parametrize("transports", [["websocket"], ["polling", "websocket"]])
async def test_node_peers_are_decoded(msgpack: bool, deflate: bool,
                                      transports: list[str]) -> None:
    """Events, acks and binary between Node peers appear as sio.* records with the right
    names, args and bytes, whatever the parser and compression."""
    options: dict[str, Any] = {"msgpack": msgpack}
    if deflate:
        options["perMessageDeflate"] = {"threshold": 0}
    records: list[Record] = []
    async with node_server(**options) as (url, _server):
        sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)], upstream=url),
                          sinks=[records.append])
        await sniffer.start()
        try:
            client = await NodeProcess.start("log_client.js", {
                "url": sniffer.url, "transports": transports, "msgpack": msgpack})
            done = await client.expect("done")
            assert await client.wait() == 0
        finally:
            await sniffer.stop()
    assert done["echo"] == {"echo": ["hi", {"n": 1}]}
    assert done["bin"] == "fa030201"

    def find(kind: str, **match: Any) -> list[Record]:
        return [r for r in records if r.event == kind
                and all(getattr(r, k) == v for k, v in match.items())]

    assert not find("decode_error")
    connect = find("sio.connect", dir="in")
    assert connect and connect[0].get("auth") == {"token": fingerprint("node-secret")}
    assert find("sio.connect_ok", dir="out")[0].sio_sid
    echo = find("sio.event", name="echo", dir="in")
    assert echo and echo[0].args == ["hi", {"n": 1}] and echo[0].ack_id is not None
    ack = find("sio.ack", dir="out", ack_id=echo[0].ack_id)
    assert ack and ack[0].args == [{"echo": ["hi", {"n": 1}]}]
    sent = find("sio.event", name="bin", dir="in")
    assert sent and sent[0].args == [b"\x01\x02\x03\xfa"]
    back = find("sio.event", name="bin_back", dir="out")
    assert back and back[0].args[0] == b"\xfa\x03\x02\x01"
    assert back[0].args[1] == {"nested": [b"\x01\x02\x03\xfa"]}
    if transports == ["polling", "websocket"]:
        assert find("eio.upgrade")
