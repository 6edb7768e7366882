"""Records: the JSON form and the helpers every sink shares."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given
from hypothesis import strategies as st

from sio_sniffer.model import Record, fingerprint, iso_ts


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_iso_ts_matches_strftime(ts: float) -> None:
    """The cached-seconds formatter gives exactly what datetime gives, microseconds included."""
    expected = datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert iso_ts(ts) == expected


def test_to_dict_is_flat_and_leaves_out_unknowns() -> None:
    """Common fields first, kind-specific extras at the same level, None fields left out."""
    record = Record("sio.event", 0.5, conn="c1", nsp="/", name="x", args=[1],
                    extra={"attachments": 2})
    assert record.to_dict() == {"ts": "1970-01-01T00:00:00.500000Z", "event": "sio.event",
                                "conn": "c1", "nsp": "/", "name": "x", "args": [1],
                                "attachments": 2}


def test_fingerprints_are_short_stable_and_distinct() -> None:
    """Equal secrets give equal fingerprints, different ones differ, bytes and dicts work."""
    assert fingerprint("dev-token") == fingerprint("dev-token")
    assert fingerprint("dev-token") != fingerprint("dev-token2")
    assert fingerprint({"b": 1, "a": b"\x00"}) == fingerprint({"a": b"\x00", "b": 1})
    assert len(fingerprint("x")) == len("sha256:") + 8
