"""``edgeopt compile``: artifact folders every command loads, options by name, cross targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import edgeopt
from edgeopt.backends.saved import META, elf_machine
from edgeopt.cli.main import app
from edgeopt.registry import get_backend

X = np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32)

LOAD_AND_RUN = """
import sys, numpy as np, edgeopt
x = np.load(sys.argv[2])
compiled = edgeopt.load_compiled(sys.argv[1])
np.save(sys.argv[3], compiled.run({"x": x})["y"])
print(type(compiled).__name__)
"""


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino", "tvm"])
def test_compile_then_load_in_a_fresh_process_gives_the_same_outputs(
    backend: str, conv_model: Path, tmp_path: Path
) -> None:
    if not get_backend(backend).is_available():
        pytest.skip(f"{backend} is not installed: {get_backend(backend).install_hint}")
    out = tmp_path / "art"
    result = CliRunner().invoke(
        app, ["compile", str(conv_model), "-b", backend, "-O", "threads=1", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((out / META).read_text())
    assert meta["backend"] == backend and meta["options"]["threads"] == 1
    assert meta["source"]["sha256"] == edgeopt.load(conv_model).sha256()
    assert meta["interface"]["layout"] == "nchw"  # [1,3,8,8] reads as an image input
    np.save(tmp_path / "x.npy", X)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_AND_RUN,
            str(out),
            str(tmp_path / "x.npy"),
            str(tmp_path / "y"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    want = edgeopt.compile(conv_model).run({"x": X})["y"]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, atol=1e-4)
    info = CliRunner().invoke(app, ["info", str(out)])
    assert info.exit_code == 0 and f"compiled for {backend}" in info.output


def test_cross_target_writes_an_aarch64_elf(conv_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("tvm")
    out = tmp_path / "rpi4"
    result = CliRunner().invoke(
        app, ["compile", str(conv_model), "-b", "tvm", "--target", "rpi4", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert elf_machine(out / "model.tar") == "aarch64"
    assert "ELF for aarch64" in result.output
    assert json.loads((out / META).read_text())["target"]["mcpu"] == "cortex-a72"


def test_tuning_is_recorded_in_the_artifact_and_summed_up(conv_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("tvm")
    out = tmp_path / "tuned"
    args = ["compile", str(conv_model), "-b", "tvm", "--tune", "3s", "-o", str(out)]
    result = CliRunner().invoke(app, [*args, "-O", f"cache_dir={tmp_path / 'db'}"])
    assert result.exit_code == 0, result.output
    tuning = json.loads((out / META).read_text())["tuning"]
    assert tuning["tasks"] >= 1 and tuning["database"].startswith(str(tmp_path / "db"))
    said = f"tuned: {tuning['trials']} trials over {tuning['tasks_tuned']} of {tuning['tasks']}"
    assert said in " ".join(result.output.split())
    short = tuning["trials"] < 4 * tuning["tasks_tuned"]
    assert ("fewer than 4 trials per kernel" in result.output) == short


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-b", "onnxruntime", "-O", "thread=2"], "bad options for backend 'onnxruntime': thread"),
        (["-b", "onnxruntime", "-O", "threads=-3"], "threads"),
        (["-b", "onnxruntime", "-O", "threads"], "write options as key=value"),
        (["-b", "onnxruntime", "--tune", "1m"], "--tune tunes TVM kernels"),
        (["-b", "tvm", "--target", "sparc"], "--target 'sparc'"),
    ],
)
def test_bad_options_are_named(
    conv_model: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["compile", str(conv_model), *args, "-o", str(tmp_path / "a")])
    assert result.exit_code == 1
    assert message in result.output
    assert not (tmp_path / "a").exists()


def test_bench_compares_a_model_and_its_artifact_and_names_dynamic_dims(
    conv_model: Path, dynamic_model: Path, tmp_path: Path
) -> None:
    art = tmp_path / "art"
    assert (
        CliRunner()
        .invoke(app, ["compile", str(conv_model), "-b", "onnxruntime", "-o", str(art)])
        .exit_code
        == 0
    )
    out = tmp_path / "b.json"
    result = CliRunner().invoke(
        app, ["bench", str(conv_model), str(art), "--runs", "20", "--json", str(out)]
    )
    assert result.exit_code == 0, result.output
    names = [r["name"] for r in json.loads(out.read_text())["results"]]
    assert names == ["conv.onnx onnxruntime", "art"]
    bad = CliRunner().invoke(app, ["bench", str(dynamic_model), "--runs", "2"])
    assert bad.exit_code == 1 and "--shape x=1x4x1" in bad.output
    good = CliRunner().invoke(
        app, ["bench", str(dynamic_model), "--runs", "2", "--shape", "x=1x4x1"]
    )
    assert good.exit_code == 0, good.output  # the suggested flag is accepted as written
    good = CliRunner().invoke(
        app, ["bench", str(dynamic_model), "--runs", "2", "--shape", "x=1x4x5"]
    )
    assert good.exit_code == 0, good.output


def test_list_options_prints_the_backend_options() -> None:
    result = CliRunner().invoke(app, ["list", "--options", "onnxruntime"])
    assert result.exit_code == 0 and "threads" in result.output and "spinning" in result.output


def test_bgremove_runs_a_compiled_artifact(tmp_path: Path) -> None:
    from _helpers import IMAGENET_MEAN, IMAGENET_STD, make_red_softmax_nchw
    from edgeopt.apps.background.portrait_clip import write_sample

    model = make_red_softmax_nchw(tmp_path / "m.onnx")
    card = tmp_path / "card.yaml"
    card.write_text(f"mean: {list(IMAGENET_MEAN)}\nstd: {list(IMAGENET_STD)}\n")
    art = tmp_path / "art"
    done = CliRunner().invoke(app, ["compile", str(model), "-b", "onnxruntime", "-o", str(art)])
    assert done.exit_code == 0, done.output
    clip = write_sample(tmp_path / "in.mp4", (48, 64), 0.3)
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(
        app, ["bgremove", str(clip), "-o", str(out), "--model", str(art), "--card", str(card)]
    )
    assert result.exit_code == 0, result.output
    assert "9 frames in, 9 out" in result.output


def test_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"edgeopt {edgeopt.__version__}"


def test_info_profile_times_each_kernel_op(conv_model: Path) -> None:
    result = CliRunner().invoke(app, ["info", str(conv_model), "--profile"])
    assert result.exit_code == 0, result.output
    assert "ONNX Runtime profile" in result.output
    assert "Conv" in result.output.split("ONNX Runtime profile")[1]
    from edgeopt.backends.onnxruntime import profile_ops

    ops = profile_ops(edgeopt.load(conv_model), {"x": X}, runs=5)
    assert ops and all(n >= 1 and ms >= 0 for n, ms in ops.values())


def test_info_profile_times_each_kernel_of_a_tvm_artifact(conv_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("tvm")
    art = tmp_path / "art"
    result = CliRunner().invoke(app, ["compile", str(conv_model), "-b", "tvm", "-o", str(art)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["info", str(art), "--profile", "--json"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    kernels = json.loads(text[text.index("{") :])["profile_ms"]
    # TVM fuses the conv with its bias and relu into one kernel, called once per inference
    fused = [k for k in kernels if "conv2d" in k]
    assert fused and kernels[fused[0]][0] == 1 and kernels[fused[0]][1] > 0
    table = CliRunner().invoke(app, ["info", str(art), "--profile"])
    assert table.exit_code == 0 and "TVM profile" in table.output and fused[0] in table.output
    ort = tmp_path / "ort"
    CliRunner().invoke(app, ["compile", str(conv_model), "-b", "onnxruntime", "-o", str(ort)])
    refused = CliRunner().invoke(app, ["info", str(ort), "--profile"])
    assert refused.exit_code != 0
    assert "--profile on an artifact needs a TVM one (this is onnxruntime)" in refused.output


def test_json_on_stdout_and_on_list_commands(conv_model: Path) -> None:
    result = CliRunner().invoke(app, ["bench", str(conv_model), "--runs", "10", "--json", "-"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    data = json.loads(text[text.index("{") :])
    assert [r["name"] for r in data["results"]] == ["onnxruntime"]
    plugins = json.loads(CliRunner().invoke(app, ["list", "--json"]).stdout)
    assert {"kind": "pass", "name": "quantize", "available": True, "install_hint": ""} in plugins
    models = json.loads(CliRunner().invoke(app, ["models", "list", "--json"]).stdout)
    assert models[0]["interface"]["input_size"] == [256, 256]
    options = json.loads(CliRunner().invoke(app, ["list", "--options", "tvm", "--json"]).stdout)
    assert "tune_seconds" in options


def test_instability_is_flagged() -> None:
    from edgeopt.bench import Comparison
    from edgeopt.bench.report import instability
    from edgeopt.bench.result import BenchmarkResult

    steady = BenchmarkResult("a", "onnxruntime", "m", {}, (1.0,) * 20, 0, 0.0, 0.0, 0.0, 1)
    noisy = BenchmarkResult("b", "onnxruntime", "m", {}, (1.0,) * 10 + (3.0,) * 10, 0, 0, 0, 0, 1)
    comparison = Comparison(
        results=(steady, noisy),
        speedups={"a": (1.0, 1.0, 1.0), "b": (0.3, 1.0, 1.2, 0.4, 0.9)},
        block=10,
    )
    warnings = instability(comparison)
    assert warnings and all(w.startswith("b:") for w in warnings)


def test_bench_table_fits_a_narrow_terminal(
    conv_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeopt.cli import _output

    monkeypatch.setattr(_output.console, "width", 80)
    result = CliRunner().invoke(app, ["bench", str(conv_model), "--runs", "10", "-t", "1"])
    assert result.exit_code == 0, result.output
    lines = [ln for ln in result.output.splitlines() if "│" in ln or "┃" in ln]
    assert lines and max(len(ln) for ln in lines) <= 80
    assert "speed-up" in result.output and "stdev" not in result.output


def test_bench_feeds_real_images_through_the_interface(tmp_path: Path) -> None:
    import cv2

    from _helpers import IMAGENET_MEAN, IMAGENET_STD, make_red_softmax_nchw

    model = make_red_softmax_nchw(tmp_path / "m.onnx")
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((40, 60, 3), 80 * i, np.uint8))
    mean, std = ",".join(map(str, IMAGENET_MEAN)), ",".join(map(str, IMAGENET_STD))
    args = ["bench", str(model), "--runs", "5", "--data", str(folder)]
    result = CliRunner().invoke(app, [*args, "--input-mean", mean, "--input-std", std])
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(app, ["bench", str(model), "--data", str(tmp_path / "none")])
    assert bad.exit_code == 1 and "neither 'builtin', a folder of images, nor a video" in bad.output
