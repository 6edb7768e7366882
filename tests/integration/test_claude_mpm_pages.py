"""The real claude-mpm dashboard opened in Chromium through the sniffer: its page load is one
``http.page`` line in the JSON log (the ~30 asset fetches folded, every one counted), and
``--verbose`` logs each fetch. The browser's own list of requests is the reference."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from playwright.async_api import Browser

from sio_sniffer import model
from sio_sniffer.pipeline.sniffer import ProxyConfig, Sniffer
from sio_sniffer.sinks.jsonlog import JsonLogSink, LogFilter
from tests.integration.mpm_peers import Monitor


def lines(stream: io.BytesIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def open_dashboard(browser: Browser, monitor: Monitor,
                         verbose: bool) -> tuple[list[dict[str, Any]], list[str]]:
    """The log lines of one dashboard page load, and the page's fetches as the browser saw
    them (same origin, not Engine.IO)."""
    stream = io.BytesIO()
    sink = JsonLogSink(stream, log_filter=LogFilter(verbose=verbose))
    sniffer = Sniffer(ProxyConfig(listen=[("127.0.0.1", 0)],
                                  upstream=f"http://127.0.0.1:{monitor.port}"), sinks=[sink])
    await sniffer.start()
    url = sniffer.url
    fetched: list[str] = []
    try:
        page = await browser.new_page()
        page.on("requestfinished", lambda r: fetched.append(r.url))
        response = await page.goto(f"{url}/", wait_until="networkidle")
        assert response is not None and response.status == 200
        await page.close()
        if not verbose:
            # the page line is written once the page has gone quiet (by the sniffer's tick)
            async with asyncio.timeout(10):
                while not any(line["event"] == model.HTTP_PAGE for line in lines(stream)):
                    await asyncio.sleep(0.05)
    finally:
        await sniffer.stop()
        sink.close(0.0)
    own = [fetch for fetch in fetched if fetch.startswith(url) and "/socket.io/" not in fetch]
    return lines(stream), own


async def test_a_dashboard_page_load_is_one_line(browser: Browser, monitor: Monitor) -> None:
    log, fetched = await open_dashboard(browser, monitor, verbose=False)
    assert len(fetched) > 10  # the real dashboard: a page and its scripts, styles, icons
    pages = [line for line in log if line["event"] == model.HTTP_PAGE]
    assert len(pages) == 1, pages
    load = pages[0]
    assert load["page"] == "/" and load["status"] == 200
    assert load["assets"] + 1 == len(fetched)  # every fetch counted, none lost from the count
    assert load["unanswered"] == 0 and load["bytes"] > 0
    assert sum(load["statuses"].values()) == len(fetched)
    alone = [line for line in log if line["event"] in (model.HTTP, model.HTTP_REQUEST)
             and not line.get("engineio")]
    assert alone == []  # nothing of the page load is logged on its own


async def test_verbose_logs_every_fetch(browser: Browser, monitor: Monitor) -> None:
    log, fetched = await open_dashboard(browser, monitor, verbose=True)
    assert not [line for line in log if line["event"] == model.HTTP_PAGE]
    answers = [line for line in log if line["event"] == model.HTTP and line.get("fetch")]
    assert len(answers) == len(fetched)
    assert [line["fetch"] for line in answers].count("document") == 1
