"""edgeopt auto: the search keeps faithful variants, measures them, writes the winner, resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import edgeopt
from edgeopt.auto import AutoSettings, parse_bound, search
from edgeopt.bench import Comparison
from edgeopt.cli.auto import parse_duration
from edgeopt.cli.main import app
from edgeopt.errors import ConfigError

SETTINGS = AutoSettings(
    bound="cosine>=0.999",
    candidates=("fp32", "fp16-weights"),
    backends=("onnxruntime",),
    threads=(1,),
    measure_s=0.5,
    evaluation_count=3,
)


def test_search_writes_winner_and_resumes(conv_model: Path, tmp_path: Path) -> None:
    lines: list[str] = []
    result = search(conv_model, tmp_path / "out", SETTINGS, progress=lines.append)
    names = [t.name for t in result.tried]
    assert names == ["baseline: ORT fp32", "fp32@onnxruntime-1t", "fp16-weights@onnxruntime-1t"]
    assert all(t.status == "measured" and t.speedup is not None for t in result.tried)
    assert result.tried[2].fidelity is not None and result.tried[2].fidelity["cosine"] > 0.999
    out = tmp_path / "out"
    winner = edgeopt.load(out / "winner" / "model.onnx")
    assert winner.inputs == edgeopt.load(conv_model).inputs
    settings = json.loads((out / "winner" / "settings.json").read_text())
    assert settings["backend"] == "onnxruntime"
    back = Comparison.from_json((out / "comparison.json").read_text())
    assert [r.name for r in back.results] == names
    assert "| fp16-weights@onnxruntime-1t | onnxruntime |" in (out / "report.md").read_text()
    assert (out / "comparison.png").stat().st_size > 1000
    assert any(line.startswith("optimizing: fp16-weights") for line in lines)
    # A second run finds the optimized model and the fidelity in its cache.
    again: list[str] = []
    search(conv_model, out, SETTINGS, progress=again.append)
    assert not any(line.startswith(("optimizing", "checking fidelity")) for line in again)


def test_unfaithful_variants_are_dropped(conv_model: Path, tmp_path: Path) -> None:
    strict = SETTINGS.model_copy(update={"bound": "max_abs<=1e-9"})
    result = search(conv_model, tmp_path / "out", strict)
    fp16 = next(t for t in result.tried if t.candidate == "fp16-weights")
    assert fp16.status.startswith("fails max_abs<=1e-9") and fp16.speedup is None


def test_bad_settings() -> None:
    assert parse_bound("iou >= 0.98") == ("iou", 0.98)
    with pytest.raises(ConfigError, match=r"bad fidelity bound 'iou>0\.9'"):
        parse_bound("iou>0.9")
    with pytest.raises(ConfigError, match=r"unknown candidate\(s\) \['magic'\]"):
        search("x.onnx", "out", AutoSettings(candidates=("magic",)))
    assert parse_duration("15m") == 900 and parse_duration("90") == 90
    with pytest.raises(ConfigError, match="bad duration"):
        parse_duration("soon")


def test_cli(conv_model: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "auto",
            str(conv_model),
            "-o",
            str(tmp_path / "o"),
            "--bound",
            "cosine>=0.99",
            "--candidate",
            "fp32",
            "-b",
            "onnxruntime",
            "-t",
            "1",
            "--measure-s",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "winner:" in result.output and (tmp_path / "o" / "winner" / "model.onnx").is_file()
