"""Structural comparison of payloads: does what went in reappear in what came out?

Servers rarely relay a payload verbatim. claude-mpm unwraps the hook's POST body
``{"event", "data": {"type", "subtype", "session_id", ..., "data": {...hook dict...}}}`` and emits
``{type, subtype, data: {...hook dict...}, timestamp, session_id, ...}``: the *innermost* dict
reappears, wrapped differently, with fields added or dropped around it. So an ingested payload is
described by its chain of nested dicts (outermost first, following the biggest dict child), and an
emitted payload matches when it holds a dict that covers the innermost one: every key present
with a covered value; extra keys are allowed. Every walk is bounded in nodes (``MAX_NODES``), and
the recursive comparison in depth too, so a huge or hostile payload costs a fixed amount.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from typing import Any

import orjson

MAX_NODES = 2000
MAX_DEPTH = 32
Scalar = str | int | float
# Keys that name one event among others of its kind: ids (``id``, ``correlation_id``,
# ``requestId``), sequence numbers, nonces. Two payloads whose values differ under such a key are
# two events, however alike the rest of them is.
IDENTITY_KEY = re.compile(
    r"(?:^(?:id|uuid|guid|seq|sequence|nonce|serial|n|index|idx|counter)$"
    r"|[_\-.](?:id|uuid|guid|seq|no|num|nonce)$|[a-z](?:Id|ID|Uuid|Seq|Num)$|correlation)",
)


def canonical(value: Any) -> bytes:
    """Canonical JSON of a payload, equal for equal payloads whatever their key order."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
                            default=_bytes_default)
    except (TypeError, orjson.JSONEncodeError):
        return repr(value).encode()


def fingerprint(value: Any) -> bytes:
    """A 16-byte digest of :func:`canonical`: what tables keep (the JSON may be large)."""
    return hashlib.blake2b(canonical(value), digest_size=16).digest()


def _bytes_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"_bytes": base64.b64encode(bytes(value)).decode()}
    raise TypeError


def core(value: Any) -> Any:
    """A payload without its single-argument list wrapper: ``[x]`` → ``x``."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def main_argument(args: Any) -> Any:
    """Of an event's arguments, the one dict when the others are scalars, as in
    ``emit("say", room, {...})``: the scalars are routing (a room, a recipient) that the server
    consumes and a relay does not re-emit; otherwise the arguments as :func:`core` gives them."""
    if isinstance(args, list) and len(args) > 1:
        dicts = [a for a in args if isinstance(a, dict)]
        if len(dicts) == 1 and not any(isinstance(a, list) for a in args):
            return dicts[0]
    return core(args)


def leaf_count(value: Any, limit: int = MAX_NODES) -> int:
    """Number of scalar leaves (strings, numbers, booleans, bytes, null) in a payload."""
    return len(leaves(value, limit))


def leaves(value: Any, limit: int = MAX_NODES) -> list[Any]:
    """The scalars of a payload (dict values and list items), at most ``limit`` nodes visited.

    The hot path of the correlation (every event in and out walks its payload once), hence exact
    type tests: payloads come from the JSON and msgpack decoders, never from dict subclasses.
    """
    kind = type(value)
    if kind is not dict and kind is not list:
        return [value]
    out: list[Any] = []
    add = out.append
    stack = [value]
    pop, extend = stack.pop, stack.extend
    seen = 0
    while stack and seen < limit:
        node = pop()
        seen += 1
        kind = type(node)
        if kind is dict:
            extend(node.values())
        elif kind is list:
            extend(node)
        else:
            add(node)
    return out


def dict_chain(value: Any) -> list[dict[str, Any]]:
    """Nested dicts from the outermost inwards, each time into the child dict with most leaves.

    Children with no leaves at all (``{}``) are not followed: an empty dict says nothing.
    """
    chain: list[dict[str, Any]] = []
    node = core(value)
    while isinstance(node, dict) and len(chain) < MAX_DEPTH:
        chain.append(node)
        best: dict[str, Any] | None = None
        best_leaves = 0
        for child in node.values():
            if isinstance(child, dict):
                leaves = leaf_count(child)
                if leaves > best_leaves:
                    best, best_leaves = child, leaves
        node = best
    return chain


def covers(needle: Any, hay: Any, depth: int = 0) -> bool:
    """``hay`` holds everything ``needle`` holds (dicts may have extra keys in ``hay``)."""
    if depth > MAX_DEPTH:
        return False
    if isinstance(needle, dict):
        if not isinstance(hay, dict):
            return False
        for key, value in needle.items():
            if key not in hay or not covers(value, hay[key], depth + 1):
                return False
        return True
    if isinstance(needle, list):
        if not isinstance(hay, list) or len(hay) != len(needle):
            return False
        return all(covers(a, b, depth + 1) for a, b in zip(needle, hay, strict=True))
    if isinstance(needle, bool) or isinstance(hay, bool):
        return needle is hay
    return bool(needle == hay)


def nodes(value: Any) -> Iterator[Any]:
    """Every dict and list in a payload, the payload itself first (bounded)."""
    stack = [(value, 0)]
    seen = 0
    while stack and seen < MAX_NODES:
        node, depth = stack.pop()
        seen += 1
        if isinstance(node, dict):
            yield node
            if depth < MAX_DEPTH:
                stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            yield node
            if depth < MAX_DEPTH:
                stack.extend((v, depth + 1) for v in node)


def contains(hay: Any, needle: Any) -> bool:
    """Some dict or list inside ``hay`` (or ``hay`` itself) covers ``needle``."""
    if not isinstance(needle, (dict, list)):
        return any(_scalar_equal(needle, s) for s in leaves(hay))
    kind = type(needle)
    return any(covers(needle, node) for node in nodes(hay) if type(node) is kind)


def _scalar_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return bool(a == b)


def scalars(value: Any) -> Iterator[tuple[str, Any]]:
    """``(key, scalar)`` pairs of a payload; list items and top-level scalars have key ``""``."""
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    seen = 0
    while stack and seen < MAX_NODES:
        key, node, depth = stack.pop()
        seen += 1
        if isinstance(node, dict):
            if depth < MAX_DEPTH:
                stack.extend((str(k), v, depth + 1) for k, v in node.items())
        elif isinstance(node, list):
            if depth < MAX_DEPTH:
                stack.extend((key, v, depth + 1) for v in node)
        else:
            yield key, node


def is_anchor(value: Any) -> bool:
    """A scalar distinctive enough to look an expectation up by (not ``true``, ``0``, ``"a"``)."""
    kind = type(value)
    if kind is str:
        return len(value) >= 3
    if kind is int:
        return bool(abs(value) >= 1000)
    return kind is float


def anchors(found: list[Any], limit: int = 1) -> list[Scalar]:
    """The most distinctive of a payload's :func:`leaves`: longest strings first, then big
    numbers (the caller walks the payload once and reuses the leaves)."""
    strings: dict[str, None] = {}
    numbers: dict[int | float, None] = {}
    for scalar in found:
        if is_anchor(scalar):
            if type(scalar) is str:
                strings[scalar] = None
            else:
                numbers[scalar] = None
    ranked: list[Scalar] = [*sorted(strings, key=len, reverse=True)[:limit], *numbers]
    return ranked[:limit]


def has_key(value: Any, key: str) -> bool:
    """Some dict inside the payload has ``key``."""
    return any(isinstance(node, dict) and key in node for node in nodes(value))


def has_value(value: Any, key: str) -> bool:
    """Some dict inside the payload has ``key`` with a value other than None: a field relayed
    as ``null`` is as good as dropped for a view that groups by it."""
    return any(isinstance(node, dict) and node.get(key) is not None for node in nodes(value))


def pairs(value: Any) -> frozenset[tuple[str, Any]]:
    """The ``(key, scalar)`` pairs of a payload as a set, for :func:`similarity`."""
    return frozenset((k, _hashable(v)) for k, v in scalars(value))


def similarity(needle: Any, hay: Any) -> tuple[int, int]:
    """How many of ``needle``'s ``(key, scalar)`` pairs also occur in ``hay``, out of how many.

    Either side may be given as :func:`pairs` already (a frozenset), to compute it once.
    """
    wanted = needle if isinstance(needle, frozenset) else pairs(needle)
    if not wanted:
        return 0, 0
    present = hay if isinstance(hay, frozenset) else pairs(hay)
    return len(wanted & present), len(wanted)


def _hashable(value: Any) -> Any:
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def differences(needle: Any, hay: Any, limit: int = 4) -> list[str]:
    """Short phrases saying how ``hay`` differs from ``needle`` (missing keys, changed values)."""
    target = core(needle)
    chain = dict_chain(target)
    if not chain:
        return ["payload not found"] if not contains(hay, target) else []
    hay_pairs: dict[str, list[Any]] = {}
    for key, value in scalars(hay):
        hay_pairs.setdefault(key, []).append(value)
    hay_keys = {k for node in nodes(hay) if isinstance(node, dict) for k in node}
    missing: list[str] = []
    changed: list[str] = []
    seen: set[str] = set()
    # Compare against the level of the ingested payload that the emit resembles most: the hook's
    # envelope keys (``event``, ``namespace``) are never expected to reappear.
    level = max(chain, key=lambda d: _score(similarity(d, hay)))
    for key, value in scalars(level):
        if not key or key in seen:
            continue
        seen.add(key)
        if key not in hay_keys:
            missing.append(key)
        elif key in hay_pairs and not any(_scalar_equal(value, v) for v in hay_pairs[key]):
            changed.append(f"{key} {_short(value)} became {_short(hay_pairs[key][0])}")
    out = []
    if missing:
        out.append("missing " + ", ".join(sorted(missing)[:limit]))
    out.extend(changed[:limit])
    if len(chain) > 1 and not contains(hay, chain[-1]):
        out.append("the innermost dict does not reappear")
    return out


def identity_conflicts(needle: Any, hay: Any, limit: int = 4) -> list[str]:
    """The identifying keys (:data:`IDENTITY_KEY`) of ``needle`` that ``hay`` carries with other
    values only, as ``"correlation_id 'x-2' (it carries 'x-3')"``: then ``hay`` is another event."""
    hay_values: dict[str, list[Any]] = {}
    for key, value in scalars(hay):
        if key and IDENTITY_KEY.search(key):
            hay_values.setdefault(key, []).append(value)
    out: list[str] = []
    seen: set[str] = set()
    for key, value in scalars(needle):
        if key in seen or key not in hay_values or isinstance(value, bool) or value is None:
            continue
        seen.add(key)
        if not any(_scalar_equal(value, v) for v in hay_values[key]):
            out.append(f"{key} {_short(value)} (it carries {_short(hay_values[key][0])})")
            if len(out) >= limit:
                break
    return out


def _score(pair: tuple[int, int]) -> tuple[int, float]:
    """Most fields in common first; among equals, the level with the fewest fields besides."""
    return pair[0], pair[0] / pair[1] if pair[1] else 0.0


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
