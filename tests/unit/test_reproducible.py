"""An optimized model is the same file whatever folder it was made in (no paths in it)."""

from __future__ import annotations

import shutil
from pathlib import Path

import edgeopt


def test_optimizing_from_two_folders_gives_the_same_bytes(conv_model: Path, tmp_path: Path) -> None:
    recipe = {
        "passes": [{"name": "simplify"}, {"name": "fp16"}],
        "data": {"source": "builtin", "evaluation_count": 2, "calibration_count": 2},
    }
    made = []
    for folder in (tmp_path / "one", tmp_path / "two" / "deeper"):
        folder.mkdir(parents=True)
        shutil.copy(conv_model, folder / "m.onnx")
        report = edgeopt.optimize(folder / "m.onnx", recipe, folder / "out")
        made.append(Path(report.output).read_bytes())
    assert made[0] == made[1]
    assert str(tmp_path).encode() not in made[0]
