"""The report command over real captures: text, JSON, HTML in Chromium, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from sio_sniffer.analysis import AnalysisConfig
from sio_sniffer.model import Record
from sio_sniffer.report import build_report, open_inputs, render_html
from tests.capture.capture_peers import capture_lost_hook
from tests.paths import ROOT


def sniffer(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sio_sniffer", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)


def test_report_text_and_json_describe_the_session(captured: Path) -> None:
    """`report FILE` names both clients and their events; --json carries the same facts."""
    text = sniffer("report", "--no-analysis", str(captured))
    assert text.returncode == 0, text.stderr
    assert "clients: 2" in text.stdout and "/ echo in: 2" in text.stdout
    js = sniffer("report", "--no-analysis", "--json", str(captured))
    data = json.loads(js.stdout)
    assert len(data["clients"]) == 2
    assert {"nsp": "/admin", "name": "stats", "dir": "in", "count": 1} in data["events"]
    assert data["problems"] == []


def test_truncated_capture_reports_line_and_what_was_readable(
        captured: Path, tmp_path: Path) -> None:
    """A capture cut mid-line and with a corrupt line: exit 1, file:line on stderr, and the
    report still covers everything before and after."""
    lines = captured.read_bytes().rstrip(b"\n").split(b"\n")
    broken = tmp_path / "broken.jsonl"
    bad_at = 6
    body = [*lines[: bad_at - 1], b'{"t": "ws_message", "conn": ', *lines[bad_at - 1:]]
    data = b"\n".join(body)
    broken.write_bytes(data[: len(data) - 15])
    result = sniffer("report", "--no-analysis", "--json", str(broken))
    assert result.returncode == 1
    assert f"{broken}:{bad_at}: not JSON" in result.stderr
    assert f"{broken}:{len(body)}: truncated line" in result.stderr
    report = json.loads(result.stdout)
    assert len(report["clients"]) == 2
    assert len(report["problems"]) == 2


def test_not_a_capture_is_a_clear_error(tmp_path: Path) -> None:
    """A file that is neither a capture nor a HAR gives one clear line and exit status 2."""
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    result = sniffer("report", str(other))
    assert result.returncode == 2
    assert "notes.txt:1: not a sio-sniffer capture" in result.stderr


@pytest.mark.asyncio
async def test_html_report_renders_the_timeline_in_chromium(
        captured: Path, tmp_path: Path) -> None:
    """The self-contained HTML report draws one lane per client plus the server, an arrow per
    event, and its filters narrow the rows."""
    report = build_report(open_inputs([captured]))
    out = tmp_path / "report.html"
    out.write_text(render_html(report))
    assert "http://" not in out.read_text().split("<script")[0]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium")
        page = await browser.new_page(viewport={"width": 1200, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(out.as_uri())
        lanes = await page.locator("#lanes > div").all_inner_texts()
        assert lanes[0] == "time (s)" and "server" in lanes and len(lanes) == 4
        arrows = page.locator(".arrow")
        total_rows = await page.locator("#rows .row").count()
        assert total_rows == len(report.timeline)
        assert await page.locator(".arrow.in", has_text="echo").count() == 2
        assert await page.locator(".arrow.out", has_text="bin_back").count() == 2
        assert await arrows.count() > 10
        await page.fill("#f-name", "bin_back")
        assert await page.locator("#rows .row").count() == 2
        await page.fill("#f-name", "")
        await page.select_option("#f-nsp", "/admin")
        assert 0 < await page.locator("#rows .row").count() < total_rows
        await page.screenshot(path=str(tmp_path / "report.png"))
        await browser.close()
    assert errors == []
    assert (tmp_path / "report.png").stat().st_size > 10_000


async def test_lost_hook_event_is_flagged_and_marked_in_the_html(tmp_path: Path) -> None:
    """A hook POST that never comes out as an event is a `lost` flag in the offline report,
    and the HTML timeline marks that row as lost."""
    cap = tmp_path / "lost.jsonl"
    await capture_lost_hook(cap)
    report = build_report(open_inputs([cap]), analysis=AnalysisConfig(deadline=0.2))
    lost = [f for f in report.flags if f.get("flag") == "lost"]
    assert len(lost) == 1, report.flags
    assert "/api/events" in json.dumps(lost[0])
    out = tmp_path / "lost.html"
    out.write_text(render_html(report))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium")
        page = await browser.new_page()
        await page.goto(out.as_uri())
        assert await page.locator("#rows .row.lost").count() == 1
        assert "lost" in await page.inner_text("#flags")
        await browser.close()


def test_a_raising_sink_is_switched_off_and_the_report_completes(
        captured: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The report's records go through the one record chain: a sink that raises hears one
    record, is reported once on stderr, and the report (analysis included) still completes."""
    heard: list[Record] = []

    def broken(rec: Record) -> None:
        heard.append(rec)
        raise RuntimeError("sink bug")

    report = build_report(open_inputs([captured]), analysis=AnalysisConfig(), sink=broken)
    assert len(heard) == 1
    err = capsys.readouterr().err
    assert err.count("record sink broken failed and was switched off") == 1
    assert "RuntimeError: sink bug" in err
    assert report.to_dict() == build_report(open_inputs([captured]),
                                            analysis=AnalysisConfig()).to_dict()
    assert len(report.clients) == 2 and report.summary
