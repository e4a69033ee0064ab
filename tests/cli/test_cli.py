"""The command line: tables printed, files written and read back, errors as one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib.image
import pytest
from typer.testing import CliRunner

from edgeopt.bench import Comparison
from edgeopt.cli.main import app

runner = CliRunner()


def test_info_shows_interface_and_ops(conv_model: Path) -> None:
    result = runner.invoke(app, ["info", str(conv_model)])
    assert result.exit_code == 0, result.output
    assert "112 parameters" in result.output.replace(",", "")
    assert "Conv" in result.output and "Relu" in result.output
    assert "(1, 3, 8, 8)" in result.output
    as_json = runner.invoke(app, ["info", str(conv_model), "--json"])
    assert json.loads(as_json.output)["ops"] == {"Conv": 1, "Relu": 1}


def test_bench_writes_json_chart_markdown(conv_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "bench",
            str(conv_model),
            "--threads",
            "1",
            "--threads",
            "2",
            "--runs",
            "20",
            "--warmup",
            "2",
            "--json",
            str(out / "b.json"),
            "--chart",
            str(out / "b.png"),
            "--markdown",
            str(out / "b.md"),
        ],
    )
    assert result.exit_code == 0, result.output
    for column in ("p50 ms", "p90 ms", "p99 ms", "onnxruntime-1t", "onnxruntime-2t"):
        assert column in result.output
    back = Comparison.from_json((out / "b.json").read_text())
    assert [r.name for r in back.results] == ["onnxruntime-1t", "onnxruntime-2t"]
    assert [len(r.samples_ms) for r in back.results] == [20, 20]
    assert matplotlib.image.imread(out / "b.png").shape[2] in (3, 4)
    assert "| onnxruntime-2t | onnxruntime | 2 |" in (out / "b.md").read_text()


def test_list_shows_backends() -> None:
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0
    assert "onnxruntime" in result.output and "yes" in result.output


def test_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model at all")
    proc = subprocess.run(
        [sys.executable, "-m", "edgeopt", "info", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: not a valid ONNX model")
    verbose = subprocess.run(
        [sys.executable, "-m", "edgeopt", "-v", "info", str(bad)],
        capture_output=True,
        text=True,
    )
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_bad_option_value(conv_model: Path) -> None:
    result = runner.invoke(app, ["bench", str(conv_model), "--threads", "0"])
    assert result.exit_code == 1
    assert "bad options for backend 'onnxruntime': threads" in result.output


@pytest.mark.parametrize("command", ["optimize", "auto", "compile", "convert", "bgremove"])
def test_every_command_that_writes_takes_dash_o_output(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--output" in result.output and "-o" in result.output
