"""Fuzz: truncated, bit-flipped and overwritten ONNX files end in a typed error, never a crash.

Mutations of a real model (MediaPipe selfie, converted) go through the same door users use:
``edgeopt.load`` then ``model_summary``. Each must either load (a harmless flip, e.g. in a
weight) or raise a ModelLoadError; converting one to a file must leave no output behind.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeopt.artifact import load_onnx, model_summary
from edgeopt.convert import convert
from edgeopt.errors import EdgeoptError, ModelLoadError


@pytest.fixture(scope="module")
def onnx_bytes(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    src = models_dir / "mediapipe-selfie" / "selfie_segmentation_landscape.tflite"
    out = tmp_path_factory.mktemp("fuzz") / "model.onnx"
    return convert(src, out).path.read_bytes()


def _check(data: bytes, folder: Path) -> None:
    path = folder / "m.onnx"
    path.write_bytes(data)
    try:
        summary = model_summary(load_onnx(path))
    except ModelLoadError as e:
        assert str(path) in str(e)
        return
    assert summary["nodes"] >= 0
    out = folder / "copy.onnx"
    out.unlink(missing_ok=True)
    try:
        convert(path, out)
    except EdgeoptError:
        assert not out.exists()


COMMON = settings(
    max_examples=700,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@COMMON
@given(cut=st.floats(0.0, 0.999))
def test_truncated(onnx_bytes: bytes, tmp_path: Path, cut: float) -> None:
    _check(onnx_bytes[: int(len(onnx_bytes) * cut)], tmp_path)


@COMMON
@given(flips=st.lists(st.tuples(st.floats(0, 0.9999), st.integers(0, 7)), min_size=1, max_size=8))
def test_bit_flips(onnx_bytes: bytes, tmp_path: Path, flips: list[tuple[float, int]]) -> None:
    data = bytearray(onnx_bytes)
    for where, bit in flips:
        # Most of the file is weights; aim half the flips at the graph structure at the end.
        i = int(where * len(data)) if bit % 2 else len(data) - 1 - int(where * 20000)
        data[i] ^= 1 << bit
    _check(bytes(data), tmp_path)


@COMMON
@given(start=st.floats(0, 0.9999), junk=st.binary(min_size=1, max_size=64))
def test_overwrites(onnx_bytes: bytes, tmp_path: Path, start: float, junk: bytes) -> None:
    i = int(start * len(onnx_bytes))
    _check(onnx_bytes[:i] + junk + onnx_bytes[i + len(junk) :], tmp_path)
