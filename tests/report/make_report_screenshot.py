"""Make examples/report.png: real captures (one with a swallowed hook POST) rendered by
`sio-sniffer report --html` in headless Chromium.

Run: python3 tests/report/make_report_screenshot.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.*

from sio_sniffer.analysis import AnalysisConfig
from sio_sniffer.report import build_report, open_inputs, render_html
from tests.capture.capture_peers import AppServer, capture_lost_hook, capture_session
from tests.paths import ROOT


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        session, lost = Path(tmp) / "session.jsonl", Path(tmp) / "lost.jsonl"
        srv = AppServer()
        await srv.start()
        try:
            await capture_session(srv.url, session, show_secrets=False)
        finally:
            await srv.stop()
        await capture_lost_hook(lost)
        report = build_report(open_inputs([session, lost]), analysis=AnalysisConfig(deadline=0.2))
        html = Path(tmp) / "report.html"
        html.write_text(render_html(report))
        out = ROOT / "examples" / "report.png"
        out.parent.mkdir(exist_ok=True)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium")
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(html.as_uri())
            await page.screenshot(path=str(out))
            await browser.close()
        print(out)


if __name__ == "__main__":
    asyncio.run(main())
