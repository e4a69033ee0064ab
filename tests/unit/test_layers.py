"""The layers contract: imports point down only, function-level imports included.

Each module of ``src/edgeopt`` belongs to a layer (the table below, from ``DESIGN.md``); an
import may only reach a lower layer, or a module of its own package. Modules of different
packages in one layer do not import each other. Read from the source with ``ast``, so a hidden
function-level import counts as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

from _helpers import ROOT

SRC = ROOT / "src" / "edgeopt"

LAYERS: dict[str, int] = {
    "errors": 0,
    "_fs": 1,
    "pixels": 1,
    "metrics": 1,
    "data": 1,
    "rewrites": 1,
    "tasks": 1,
    "audio": 1,
    "textimages": 1,
    "artifact": 2,
    "interface": 3,
    "shapes": 3,
    "card": 4,
    "registry": 4,
    "backends.base": 4,  # the plugin protocols sit beside the registry that returns them
    "passes.base": 4,
    "frontends": 5,
    "passes": 6,
    "backends": 6,
    "zoo": 6,
    "recipe": 6,
    "convert": 6,
    "bench": 7,
    "htmlpage": 2,  # report pages: html.escape and matplotlib, no edgeopt above _fs
    "loader": 7,  # load(): zoo names, .tflite and PyTorch files as ONNX, for every entry point
    "_api": 8,
    "pipeline": 8,
    "auto": 9,
    "apps": 9,
    "cli": 10,
    "__init__": 10,
    "__main__": 11,  # python -m edgeopt: the CLI itself
}


def _unit(module: str) -> str:
    """The layer table's key of ``edgeopt.x.y``: its first part below edgeopt."""
    parts = module.split(".")
    if ".".join(parts[1:3]) in LAYERS:
        return ".".join(parts[1:3])
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[str, int]]:
    """Every edgeopt module ``path`` imports, with the line (``from edgeopt import x`` -> x)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "edgeopt":
                found += [(f"edgeopt.{a.name}", node.lineno) for a in node.names]
            elif node.module.startswith("edgeopt."):
                found.append((node.module, node.lineno))
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("edgeopt.")]
    return found


def test_every_module_has_a_layer() -> None:
    units = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in SRC.rglob("*.py")}
    assert units <= set(LAYERS), sorted(units - set(LAYERS))


def test_imports_point_down() -> None:
    upward = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        mine = _unit("edgeopt." + ".".join(rel.with_suffix("").parts))
        for target, line in _imports(path):
            theirs = _unit(target)
            if theirs == mine or theirs not in LAYERS:
                continue
            if LAYERS[theirs] > LAYERS[mine] or (
                LAYERS[theirs] == LAYERS[mine] and not target.endswith(".base")
            ):
                upward.append(f"{rel}:{line} imports {target} (layer {mine} -> {theirs})")
    assert not upward, "\n".join(upward)
