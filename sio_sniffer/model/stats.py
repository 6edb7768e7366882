"""The one percentile of the project (analysis summary, live page, diagnostics, bench peers).

The sample at index ``floor(p * n)`` of the sorted samples (capped at the last): the rule the
Node bench peer uses too, so Python and Node figures of one bench run are comparable.
"""

from __future__ import annotations

from collections.abc import Iterable


def percentile(values: Iterable[float], pct: float, *, ordered: bool = False) -> float | None:
    """``pct`` in percent (50, 99); ``None`` for no values. ``ordered``: already sorted."""
    data = values if ordered and isinstance(values, list) else sorted(values)
    if not data:
        return None
    return data[min(len(data) - 1, int(pct / 100 * len(data)))]
