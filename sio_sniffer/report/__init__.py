"""``sio-sniffer report FILE...``: the live analysis, run offline over captures and HAR files.

Captures (and HAR files, read as captures) are merged by time, their tap events go through the
same pipeline and analyzer as on the wire, with the analyzer's clock driven by the capture's own
timestamps up to its last line (the live sniffer's summary when it wrote one: deadlines that fell
due while it ran are judged as it judged them; ingested events still in time then are listed as
not judged), and the result is printed as text, as JSON (``--json``) or written as one
self-contained HTML file (``--html OUT``): a sequence view with one lane per client and the
server in the middle, lost events and other flags marked, filters by client, namespace and
event name. Unreadable lines are reported with file and line number; the report covers what was
readable and the exit status is then 1.
"""

from __future__ import annotations

from sio_sniffer.report.build import (
    MAX_ARG_TEXT,
    MAX_TIMELINE,
    TIMELINE_KINDS,
    Report,
    build_report,
)
from sio_sniffer.report.inputs import Inputs, open_inputs
from sio_sniffer.report.render import render_html

__all__ = ["MAX_ARG_TEXT", "MAX_TIMELINE", "TIMELINE_KINDS", "Inputs", "Report", "build_report",
           "open_inputs", "render_html"]
