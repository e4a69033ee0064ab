"""LiteRT backend: the original .tflite runs beside its ONNX conversion, with equal outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeopt
from edgeopt.convert import convert
from edgeopt.errors import BackendError

pytest.importorskip("ai_edge_litert", reason="pip install ai-edge-litert")


@pytest.fixture
def landscape(models_dir: Path, tmp_path: Path) -> Path:
    src = tmp_path / "landscape.tflite"
    src.write_bytes(
        (models_dir / "mediapipe-selfie" / "selfie_segmentation_landscape.tflite").read_bytes()
    )
    return convert(src, tmp_path / "landscape.onnx").path


def test_matches_onnxruntime_and_reloads(landscape: Path, tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((1, 144, 256, 3), dtype=np.float32)
    ort = edgeopt.compile(landscape).run({"input_1": x})["segment_back"]
    lite = edgeopt.compile(landscape, "litert", {"threads": 2})
    assert [s.name for s in lite.outputs] == ["segment_back"]
    got = lite.run({"input_1": x})["segment_back"]
    np.testing.assert_allclose(got, ort, atol=1e-4)
    saved = lite.save(tmp_path / "saved")
    np.save(tmp_path / "x.npy", x)
    x_path, y_path = str(tmp_path / "x.npy"), str(tmp_path / "y.npy")
    code = (
        "import numpy as np; from edgeopt.registry import get_backend\n"
        f"m = get_backend('litert').load({str(saved)!r})\n"
        f"y = m.run({{'input_1': np.load({x_path!r})}})['segment_back']\n"
        f"np.save({y_path!r}, y)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), got)


def test_refuses_models_without_tflite_source(conv_model: Path) -> None:
    with pytest.raises(BackendError, match=r"was not imported from a \.tflite file"):
        edgeopt.compile(conv_model, "litert")


def test_refuses_changed_source(landscape: Path, tmp_path: Path) -> None:
    src = tmp_path / "landscape.tflite"
    src.write_bytes(src.read_bytes() + b"\0")
    with pytest.raises(BackendError, match="changed since"):
        edgeopt.compile(landscape, "litert")
    src.unlink()
    with pytest.raises(BackendError, match=r"TFLite source .* is missing"):
        edgeopt.compile(landscape, "litert")


def test_refuses_other_layout(models_dir: Path, tmp_path: Path) -> None:
    src = models_dir / "mediapipe-selfie" / "selfie_segmentation_landscape.tflite"
    nchw = convert(src, tmp_path / "nchw.onnx", layout="nchw")
    with pytest.raises(BackendError, match="converted with another layout"):
        edgeopt.compile(nchw, "litert")
