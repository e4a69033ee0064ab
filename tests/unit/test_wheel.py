"""The wheel, installed into a fresh venv with only the core dependencies, runs the core
commands, and a command that needs an extra names it (CI runs it: ``make test SLOW=1``)."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from _helpers import ROOT


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.mark.slow
def test_the_wheel_in_a_fresh_venv_runs_the_core_and_names_the_extras(
    models_dir: Path, tmp_path: Path
) -> None:
    built = _run(
        sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", "dist", ROOT, cwd=tmp_path
    )
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("edgeopt-*.whl"))
    venv.create(tmp_path / "env", with_pip=True)
    bin_dir = tmp_path / "env" / "bin"
    installed = _run(bin_dir / "pip", "install", "-q", wheel, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr[-2000:]
    edgeopt = bin_dir / "edgeopt"
    version = _run(edgeopt, "--version", cwd=tmp_path)
    assert version.stdout.startswith("edgeopt 0."), version.stdout + version.stderr
    listed = _run(edgeopt, "list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "pip install 'edgeopt[tvm]'" in listed.stdout
    assert "pip install 'edgeopt[openvino]'" in listed.stdout
    tflite = models_dir / "mediapipe-selfie" / "selfie_segmentation_landscape.tflite"
    converted = _run(edgeopt, "convert", tflite, "-o", "m.onnx", cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    assert (tmp_path / "m.onnx").stat().st_size > 100_000
    needs = _run(edgeopt, "compile", "m.onnx", "-b", "tvm", "-o", "art", cwd=tmp_path)
    assert needs.returncode == 1
    assert "pip install 'edgeopt[tvm]'" in needs.stderr, needs.stderr
    assert not (tmp_path / "art").exists()
