"""Structural payload comparison: the innermost dict of what went in, inside what came out."""

from __future__ import annotations

from sio_sniffer.analysis import payload
from tests.analysis.analysis_wire import hook_body, relayed


def test_innermost_dict_of_a_hook_body() -> None:
    """The chain follows nested dicts inwards; the hook's tool input is innermost."""
    chain = payload.dict_chain(hook_body())
    assert chain[-1] == {"command": "ls -la /tmp/1"}
    assert [sorted(d)[:2] for d in chain[:2]] == [["data", "event"], ["correlation_id", "cwd"]]


def test_relayed_event_contains_the_hook_dict_with_fields_added() -> None:
    """claude-mpm's re-normalized event contains the hook's inner dict; a changed one does not."""
    body = hook_body()
    out = [relayed(body)]
    assert payload.contains(out, payload.dict_chain(body)[-1])
    assert payload.contains(out, body["data"]["data"])
    changed = relayed(body)
    changed["data"] = {"tool_name": "Bash", "tool_input": {"command": "ls"}}
    assert not payload.contains([changed], body["data"]["data"])


def test_fingerprint_ignores_key_order_and_handles_bytes() -> None:
    """Equal payloads fingerprint equal whatever the key order; bytes are allowed."""
    assert payload.fingerprint({"a": 1, "b": [b"\x00"]}) == payload.fingerprint(
        {"b": [b"\x00"], "a": 1})
    assert payload.fingerprint([1]) != payload.fingerprint([True])


def test_booleans_are_not_numbers() -> None:
    """true does not cover 1 (JSON keeps them apart)."""
    assert not payload.covers({"x": True}, {"x": 1})
    assert payload.covers({"x": 1}, {"x": 1.0, "y": 2})


def test_differences_name_missing_and_changed_fields() -> None:
    """Differences compare with the level that resembles the emit most, not the hook envelope."""
    body = hook_body()
    out = relayed(body, drop=("cwd",))
    out["subtype"] = "post_tool"
    diffs = payload.differences(body, [out])
    assert diffs[0] == "missing cwd"
    assert "subtype 'pre_tool' became 'post_tool'" in diffs


def test_walks_are_bounded() -> None:
    """A deeply nested or huge payload costs a bounded walk and never recurses without end."""
    deep: object = 1
    for _ in range(10_000):
        deep = {"a": deep}
    assert payload.leaf_count(deep) == 0
    wide = list(range(100_000))
    assert sum(1 for _ in payload.scalars(wide)) < payload.MAX_NODES
