"""One log line per browser page load instead of one (or two) per asset.

Opening a dashboard fetches the page and then some thirty scripts, styles and images, each an
``http.request`` and an ``http`` record. The analysis and the live page still get all of them;
the log folds a page's fetches (the decoder marks them ``fetch``/``page``) into one ``http.page``
line once the page has gone quiet, keeping what a reader needs: how many, how many bytes, how
long, and every fetch that failed. ``--verbose`` logs them one by one instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sio_sniffer import model
from sio_sniffer.model import Record

# A page's fetches come in a burst; this long without one and the page load is over.
PAGE_QUIET = 1.0
_MAX_FAILED = 10  # failed fetches named on the line (the count covers all)
_MAX_PAGES = 64  # page loads folded at once (a crawler must not grow this without bound)


@dataclass(slots=True)
class _Page:
    page: str
    peer: str | None
    user_agent: str | None
    started: float
    last: float
    has_document: bool = False  # the page's own fetch was seen (not only its assets)
    document: int | None = None  # and its status, once answered
    fetches: int = 0
    answered: int = 0
    bytes: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failed: list[dict[str, Any]] = field(default_factory=list)
    conns: set[str] = field(default_factory=set)

    def line(self) -> dict[str, Any]:
        failed = sum(n for status, n in self.statuses.items() if status >= 400)
        line = {"event": model.HTTP_PAGE, "ts": model.iso_ts(self.started), "page": self.page,
                "peer": self.peer, "user_agent": self.user_agent, "status": self.document,
                "assets": self.fetches - self.has_document,
                "unanswered": self.fetches - self.answered, "bytes": self.bytes,
                "duration_ms": round((self.last - self.started) * 1000, 3),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "failed": failed, "failed_fetches": self.failed or None,
                "conns": len(self.conns)}
        return {key: value for key, value in line.items() if value is not None}


class PageFolder:
    """Takes the records of page fetches; gives back one line per page load when it is over."""

    def __init__(self) -> None:
        self._pages: dict[tuple[str, str | None, str | None], _Page] = {}
        self._by_conn: dict[str, _Page] = {}  # a fetch's answer comes on its request's conn
        self._finished: list[_Page] = []  # over (a reload, the table full), not yet written

    def take(self, record: Record) -> bool:
        """Whether ``record`` was folded into a page load (and is not to be logged alone)."""
        fetch = record.get("fetch")
        if fetch is None or record.conn is None:
            return False
        if record.event == model.HTTP_REQUEST:
            self._request(record, fetch == "document")
            return True
        if record.event == model.HTTP:
            page = self._by_conn.pop(record.conn, None)
            if page is None:
                return False  # its request was logged on its own (before a flush, say)
            self._answer(page, record)
            return True
        return False

    def _request(self, record: Record, document: bool) -> None:
        # A browser fetches over several connections at once: same host, other ports.
        peer = record.get("peer")
        host = peer.rpartition(":")[0] or peer if isinstance(peer, str) else None
        key = (str(record.get("page")), host, record.get("user_agent"))
        page = self._pages.get(key)
        if page is None or document:
            if page is not None:
                self._finished.append(self._pages.pop(key))  # a reload starts a new page load
            if len(self._pages) >= _MAX_PAGES:
                self._finished.append(self._pages.pop(next(iter(self._pages))))
            page = self._pages[key] = _Page(key[0], key[1], key[2], record.ts, record.ts)
        page.fetches += 1
        page.last = record.ts
        page.conns.add(str(record.conn))
        page.has_document = page.has_document or document
        self._by_conn[str(record.conn)] = page

    def _answer(self, page: _Page, record: Record) -> None:
        status = int(record.get("status") or 0)
        page.answered += 1
        page.last = max(page.last, record.ts)
        page.bytes += int(record.get("bytes") or 0)
        page.statuses[status] += 1
        if record.get("fetch") == "document":
            page.document = status
        if status >= 400 and len(page.failed) < _MAX_FAILED:
            page.failed.append({"path": record.get("path"), "status": status})

    def due(self, now: float | None) -> list[dict[str, Any]]:
        """The lines of page loads that are over by ``now`` (all of them when None)."""
        if not self._pages and not self._finished:
            return []  # the common case, on every record
        for key, page in list(self._pages.items()):
            if now is None or page.last + PAGE_QUIET <= now:
                self._finished.append(self._pages.pop(key))
        done, self._finished = self._finished, []
        for page in done:
            for conn in [c for c, p in self._by_conn.items() if p is page]:
                del self._by_conn[conn]
        return [page.line() for page in sorted(done, key=lambda p: p.started)]
