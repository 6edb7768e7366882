"""Rendering a report as one self-contained HTML page (``template.html``, no network)."""

from __future__ import annotations

import html
from importlib import resources
from pathlib import Path

import orjson

from sio_sniffer.report.build import Report


def render_html(report: Report) -> str:
    """One self-contained HTML page: summary, filters and the sequence view (no network)."""
    data = orjson.dumps({**report.to_dict(), "timeline": report.timeline},
                        default=repr).decode().replace("</", "<\\/")
    title = html.escape(f"sio-sniffer report: {', '.join(Path(f).name for f in report.files)}")
    template = resources.files("sio_sniffer.report").joinpath("template.html")
    return template.read_text(encoding="utf-8").replace("{{TITLE}}", title) \
        .replace("{{DATA}}", data)
