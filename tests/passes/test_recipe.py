"""Recipes: validation with field names, the pipeline's outputs, and `edgeopt optimize`."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from edgeopt.cli.main import app
from edgeopt.errors import ConfigError
from edgeopt.pipeline import run_pipeline
from edgeopt.recipe import load_recipe, parse_recipe, recipe_from_flags


def test_unknown_pass_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"passes\[1\]\.name: unknown pass 'sharpen'"):
        parse_recipe({"passes": [{"name": "simplify"}, {"name": "sharpen"}]})


def test_wrong_option_type_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"passes\[0\]: options\.per_channel: Input should be"):
        parse_recipe({"passes": [{"name": "quantize", "options": {"per_channel": "maybe"}}]})
    with pytest.raises(ConfigError, match=r"options\.accuracy\.threshold"):
        parse_recipe(
            {"passes": [{"name": "quantize", "options": {"accuracy": {"threshold": "high"}}}]}
        )
    with pytest.raises(ConfigError, match=r"data\.colour: Extra inputs are not permitted"):
        parse_recipe({"passes": [{"name": "simplify"}], "data": {"colour": "red"}})
    with pytest.raises(ConfigError, match=r"passes\[0\]\.option: Extra inputs"):
        parse_recipe({"passes": [{"name": "simplify", "option": {}}]})


def test_load_recipe_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("passes: [name: simplify\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(bad)
    bad.write_text("- simplify\n")
    with pytest.raises(ConfigError, match="a recipe is a mapping"):
        load_recipe(bad)
    with pytest.raises(ConfigError, match="nothing to do"):
        recipe_from_flags()


def test_pipeline_writes_model_and_reports(mobilenet_model: Path, tmp_path: Path) -> None:
    recipe_file = tmp_path / "r.yaml"
    recipe_file.write_text(
        "passes:\n"
        "  - name: simplify\n"
        "  - name: prune\n"
        "    options: {sparsity: 0.2, min_elements: 100000}\n"
        "  - name: quantize\n"
        "    options: {mode: static, per_channel: true}\n"
        "data: {source: builtin, calibration_count: 4, evaluation_count: 3}\n"
    )
    out = tmp_path / "out"
    report = run_pipeline(mobilenet_model, load_recipe(recipe_file), out)
    # "prune" is the older name of prune_unstructured: accepted, reported by its own name
    assert [s.name for s in report.steps] == ["simplify", "prune_unstructured", "quantize"]
    assert report.steps[1].skipped is not None and not report.steps[1].applied
    assert report.steps[2].applied and report.steps[2].fidelity is not None
    assert report.steps[2].fidelity["cosine"] > 0.99
    onnx.checker.check_model(onnx.load(str(out / "model.onnx")))
    data = json.loads((out / "report.json").read_text())
    assert data["schema"] == "edgeopt.optimize/1" and len(data["steps"]) == 3
    assert data["steps"][2]["details"]["quantized_nodes"] > 0
    md = (out / "report.md").read_text()
    assert "| 2 | prune_unstructured | skipped:" in md and "| 3 | quantize | applied |" in md


def test_cli_optimize_inline_flags(mobilenet_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    res = CliRunner().invoke(
        app, ["optimize", str(mobilenet_model), "--quantize", "dynamic", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert (out / "model.onnx").is_file() and "quantize" in res.output
    bad = CliRunner().invoke(app, ["optimize", str(mobilenet_model), "-o", str(out)])
    assert bad.exit_code == 1 and "nothing to do" in bad.output
    recipe = tmp_path / "r.yaml"
    recipe.write_text("passes:\n  - name: quantise\n")
    bad = CliRunner().invoke(
        app, ["optimize", str(mobilenet_model), "-r", str(recipe), "-o", str(out)]
    )
    assert bad.exit_code == 1 and "passes[0].name: unknown pass 'quantise'" in bad.output


def test_ort_layout_flag_runs_last() -> None:
    from edgeopt.recipe import recipe_from_flags

    plan = recipe_from_flags(simplify=True, ort_layout=True)
    assert [s.name for s in plan.passes] == ["simplify", "ort_layout"]


def test_bound_flag_uses_the_one_bound_syntax() -> None:
    from edgeopt.recipe import recipe_from_flags

    plan = recipe_from_flags(quantize="static", bound="cosine>=0.999")
    assert plan.passes[0].options["accuracy"] == {"metric": "cosine", "threshold": 0.999}
    with pytest.raises(ConfigError, match=r"bad fidelity bound 'iou=0\.9'"):
        recipe_from_flags(quantize="static", bound="iou=0.9")


def test_auto_options_go_to_the_backend_or_pass_they_name() -> None:
    from edgeopt.cli._options import split_options

    backends, passes = split_options(
        ["tvm.tune_seconds=600", "prune_structured.round_to=8", "openvino.precision=bf16"]
    )
    assert backends == {"tvm": {"tune_seconds": 600}, "openvino": {"precision": "bf16"}}
    assert passes == {"prune_structured": {"round_to": 8}}
    with pytest.raises(ConfigError, match=r"'nope' is not a backend"):
        split_options(["nope.x=1"])
