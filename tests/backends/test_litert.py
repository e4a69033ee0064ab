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
    with pytest.raises(BackendError, match=r"TFLite source of .* is not beside it nor where"):
        edgeopt.compile(landscape, "litert")


def test_a_conversion_is_the_same_file_from_any_folder_and_finds_its_source_beside_it(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (models_dir / "mediapipe-selfie" / "selfie_segmentation_landscape.tflite").read_bytes()
    made = []
    for folder in ("one", "two/deeper"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "landscape.tflite").write_bytes(data)
        made.append(convert(tmp_path / folder / "landscape.tflite", tmp_path / folder / "m.onnx"))
    first, second = (m.path.read_bytes() for m in made)
    assert first == second  # no path, no time: the same bytes from any folder
    assert str(tmp_path).encode() not in first
    # Moved to another machine (no record of where it was converted): found beside the model.
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(tmp_path / "empty-cache"))
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "m.onnx").write_bytes(first)
    with pytest.raises(BackendError, match=r"\(landscape\.tflite, sha256 [0-9a-f]{16}\)"):
        edgeopt.compile(moved / "m.onnx", "litert")
    (moved / "landscape.tflite").write_bytes(data)
    lite = edgeopt.compile(moved / "m.onnx", "litert", {"threads": 1})
    assert [s.name for s in lite.outputs] == ["segment_back"]


def test_refuses_other_layout(models_dir: Path, tmp_path: Path) -> None:
    src = models_dir / "mediapipe-selfie" / "selfie_segmentation_landscape.tflite"
    nchw = convert(src, tmp_path / "nchw.onnx", layout="nchw")
    with pytest.raises(BackendError, match="converted with another layout"):
        edgeopt.compile(nchw, "litert")
