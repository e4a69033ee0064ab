"""The one command-line grammar: every command's help walked and checked, the line rewritten
(global flags anywhere, bare --json, old duration flags), durations, exit codes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main
from onnx import TensorProto, helper
from typer.testing import CliRunner

from _helpers import save_model
from edgeopt.cli._grammar import EXIT_PARTIAL, RENAMED, normalize, parse_duration
from edgeopt.cli.main import app
from edgeopt.errors import ConfigError

DURATION_FLAGS = {"--time", "--budget", "--measure", "--tune", "--frame-budget"}


def _commands(command: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    subs = getattr(command, "commands", {})
    found = [(path, command)]
    for name, sub in subs.items():
        found += _commands(sub, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "root")
def test_every_command_help_follows_the_grammar(path: tuple[str, ...]) -> None:
    short = CliRunner().invoke(app, [*path, "-h"])
    assert short.exit_code == 0, short.output
    assert short.output == CliRunner().invoke(app, [*path, "--help"]).output
    assert "Usage: edgeopt" in short.output
    assert not re.search(r"<[a-z_\[\]| ]+>", short.output), short.output  # no <str>, <bool>
    command = dict(COMMANDS)[path]
    for param in command.params:
        if param.param_type_name != "option" or param.name == "help":
            continue
        flag = param.opts[0]
        assert param.help, f"{path} {flag} has no help"
        if not param.is_flag:
            assert param.metavar, f"{path} {flag} shows no value name"
        if "--json" in param.opts:
            assert param.metavar == "PATH|-"
        if set(param.opts) & DURATION_FLAGS:
            assert param.metavar == "DURATION", f"{path} {flag}"
        assert not set(param.opts) & set(RENAMED), f"{path} {flag} is an old name"


def test_commands_with_a_result_write_it_as_json() -> None:
    writers = {p for p, c in COMMANDS if any("--json" in q.opts for q in c.params)}
    want = {("info",), ("bench",), ("list",), ("convert",), ("compile",), ("auto",)}
    want |= {("optimize",), ("models", "list"), ("models", "info")}
    assert want <= writers


def test_the_line_is_rewritten_to_one_grammar() -> None:
    assert normalize(["info", "m.onnx", "-v"]) == (["-v", "info", "m.onnx"], [])
    assert normalize(["bench", "m", "-q", "--json"]) == (["-q", "bench", "m", "--json", "-"], [])
    assert normalize(["info", "--json", "--profile", "m"])[0] == [
        *("info", "--json", "-", "--profile", "m")
    ]
    given = ["bench", "m", "--json", "out.json"]
    assert normalize(given)[0] == given
    line, notes = normalize(["bench", "m", "--seconds", "10"])
    assert line == ["bench", "m", "--time", "10s"]
    assert notes == ["warning: --seconds is deprecated: write --time 10s"]
    assert normalize(["auto", "m", "--measure-s=5"])[0] == ["auto", "m", "--measure", "5s"]
    assert normalize(["bgremove", "x", "--budget-ms", "12"])[0][-2:] == ["--frame-budget", "12ms"]
    assert normalize(["bench", "--", "-v"]) == (["bench", "--", "-v"], [])


def test_durations() -> None:
    assert parse_duration("250ms") == pytest.approx(0.25)
    assert parse_duration("90s") == 90 and parse_duration("15m") == 900
    assert parse_duration("1h") == 3600 and parse_duration("90") == 90
    assert parse_duration("12", "ms") == pytest.approx(0.012)
    for bad in ("soon", "-5s", "0s", "5 days"):
        with pytest.raises(ConfigError, match=r"bad duration .* write it like 250ms, 90s"):
            parse_duration(bad)


def test_global_flags_after_the_subcommand(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.onnx")
    quiet = CliRunner().invoke(app, ["info", missing])
    loud = CliRunner().invoke(app, ["info", missing, "-v"])
    assert quiet.exit_code == loud.exit_code == 1
    assert "Traceback" in loud.output and "Traceback" not in quiet.output


def test_old_duration_flags_still_work_and_say_what_to_write(conv_model: Path) -> None:
    result = CliRunner().invoke(app, ["bench", str(conv_model), "--seconds", "0.2", "-q"])
    assert result.exit_code == 0, result.output
    assert "warning: --seconds is deprecated: write --time 0.2s" in result.output


def test_a_bench_with_a_failing_variant_exits_3_with_its_results_written(
    conv_model: Path, tmp_path: Path
) -> None:
    node = helper.make_node("NoSuchOp", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph(
        [node],
        "unknown-op",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    bad = save_model(graph, tmp_path / "bad.onnx", {"": 13, "com.example": 1})
    out = tmp_path / "b.json"
    args = ["bench", str(conv_model), str(bad), "--runs", "10", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == EXIT_PARTIAL, result.output
    assert "error: 1 variant(s) failed: bad.onnx onnxruntime" in result.output
    written = json.loads(out.read_text())
    assert [r["name"] for r in written["results"]] == ["conv.onnx onnxruntime"]
    assert list(written["failures"]) == ["bad.onnx onnxruntime"]


def test_an_auto_whose_asked_backend_fails_everywhere_exits_3_with_its_report(
    conv_model: Path, tmp_path: Path
) -> None:
    args = ["auto", str(conv_model), "-o", str(tmp_path / "o"), "--bound", "cosine>=0.99"]
    args += ["--candidate", "fp32", "-b", "onnxruntime", "-b", "litert", "-t", "1"]
    result = CliRunner().invoke(app, [*args, "--budget", "2m", "--measure", "1s", "-q"])
    assert result.exit_code == EXIT_PARTIAL, result.output
    assert "error: every variant failed on litert: litert runs TFLite models" in result.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["winner"]["backend"] == "onnxruntime"
