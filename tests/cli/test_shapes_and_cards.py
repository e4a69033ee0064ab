"""--shape and --card on the commands that optimize, search and compile."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

import edgeopt
from edgeopt.cli.main import app


def test_optimize_needs_a_size_for_dynamic_dims_and_takes_shape(
    dynamic_model: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["optimize", str(dynamic_model), "--fp16", "-o", str(tmp_path / "a")])
    assert bad.exit_code == 1 and "give its size with --shape" in bad.output
    good = runner.invoke(
        app,
        ["optimize", str(dynamic_model), "--fp16", "--shape", "x=2x4x3", "-o", str(tmp_path / "b")],
    )
    assert good.exit_code == 0, good.output
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["metric"] == "snr" and "2 random inputs" not in report["data"]["evaluation"]
    wrong = runner.invoke(
        app,
        ["optimize", str(dynamic_model), "--fp16", "--shape", "x=2x5x3", "-o", str(tmp_path / "c")],
    )
    assert wrong.exit_code == 1 and "does not fit input 'x' of shape Nx4xN" in wrong.output


def test_compile_takes_shape(dynamic_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "art"
    result = CliRunner().invoke(
        app,
        ["compile", str(dynamic_model), "-b", "onnxruntime", "--shape", "x=1x4x6", "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    reloaded = edgeopt.load_compiled(out)
    assert reloaded.inputs[0].shape == (1, 4, 6)


def test_a_yaml_card_gives_the_task_and_its_default_bound(conv_model: Path, tmp_path: Path) -> None:
    card = tmp_path / "card.yaml"
    card.write_text("task: {kind: classification, output: y, axis: 1}\n")
    out = tmp_path / "o"
    result = CliRunner().invoke(
        app,
        ["optimize", str(conv_model), "--fp16", "--card", str(card), "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["metric"] == "top1" and report["task"]["kind"] == "classification"
    assert report["steps"][0]["fidelity"]["top1"] > 0.9  # fp16 weights keep the argmax
    assert "top1" in result.output
