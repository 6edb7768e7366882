"""The layer table of the README ("How it works"): each package imports only what it may.

Every import of every module is read from its source (including imports inside functions and
under ``TYPE_CHECKING``), so a lazy import cannot hide an arrow the table does not allow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sio_sniffer"

# layer -> the layers of ours it may import (itself always). Top-level modules count as layers
# of their own name; "support" (loops, progress, shutdown) imports nothing of ours.
TOOLS = {
    "model", "codec", "transport", "analysis", "pipeline", "capture", "sinks", "web", "testing",
    "support", "cluster",
}
ALLOWED: dict[str, set[str]] = {
    "model": set(),
    "support": set(),
    "codec": {"model"},
    "transport": {"model"},
    "analysis": {"model"},
    "sinks": {"model", "support"},
    "capture": {"model", "codec", "support"},
    "web": {"model", "support"},
    "cluster": {"model"},
    "pipeline": {"model", "codec", "analysis", "sinks", "transport", "cluster"},
    "testing": {"model", "support"},
    "replay": TOOLS,
    "report": TOOLS,
    "bench": TOOLS,
    "diagnostics": TOOLS,
    "proxy": TOOLS,
    "commands": TOOLS | {"replay", "report", "bench", "diagnostics", "proxy", "commands"},
    "cli": {"commands"},
    "__init__": set(),
    "__main__": {"cli"},
}
# Only the embeddable Sniffer of the pipeline wires the relay in.
EXCEPTIONS = {("pipeline/sniffer.py", "transport")}


def _layer(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    """The layers of ours that ``path`` imports."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names] \
                if node.module == "sio_sniffer" else [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "sio_sniffer" and len(parts) > 1:
                found.add(parts[1])
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_layer_is_in_the_table() -> None:
    assert {_layer(p) for p in MODULES} <= set(ALLOWED)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layer_table(path: Path) -> None:
    layer = _layer(path)
    rel = str(path.relative_to(PACKAGE))
    allowed = ALLOWED[layer] | {layer, "__version__"}
    wrong = {i for i in _imports(path) - allowed if (rel, i) not in EXCEPTIONS}
    assert not wrong, f"{rel} ({layer}) may not import {sorted(wrong)}"


def test_the_check_sees_lazy_and_type_only_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                      "    from sio_sniffer.analysis import Analyzer\n"
                      "def f():\n    import sio_sniffer.web.live\n"
                      "    from sio_sniffer import capture\n")
    assert _imports(module) == {"analysis", "web", "capture"}
