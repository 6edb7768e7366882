"""Helpers for the dashboard page tests: a hook simulator and readers of the page's reports."""

from __future__ import annotations

import aiohttp

from sio_sniffer.diagnostics.clients import find_probe, hook_body
from sio_sniffer.diagnostics.server import INGEST_PATH
from sio_sniffer.web.dashboard_page import PageEvent, PageReport

TIME_CELL = r"\d\d:\d\d:\d\d\.\d{3}"


async def post_hooks(url: str, count: int, nonce: str) -> None:
    """POST ``count`` hook events as claude-mpm's hook does; every one must be accepted."""
    async with aiohttp.ClientSession() as http:
        for seq in range(count):
            async with http.post(url + INGEST_PATH, json=hook_body(seq, nonce)) as resp:
                assert 200 <= resp.status < 300, await resp.text()


def probes(report: PageReport, nonce: str, nsp: str | None = None) -> dict[int, PageEvent]:
    """The probe events carrying ``nonce`` the page received (on ``nsp``, if given), by seq."""
    found: dict[int, PageEvent] = {}
    for event in report.events:
        seq = find_probe(event.args, nonce)
        if seq is not None and (nsp is None or event.nsp == nsp):
            found.setdefault(seq, event)
    return found


def connected(report: PageReport, *namespaces: str) -> bool:
    """Each namespace is connected and its test emit was acked."""
    return all(nsp in report.namespaces and report.namespaces[nsp].state == "connected"
               and report.namespaces[nsp].ack_status == "answered" for nsp in namespaces)
