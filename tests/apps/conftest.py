"""Fixtures of the background-removal tests: a tiny "red is a person" model, and the real one.

The tiny model (input [1,32,32,3] NHWC RGB in [0,1], output sigmoid(40 * (R - 0.5))) makes
masks that are known exactly: red pixels are the person. The real MediaPipe model is pulled
through the zoo from the verified offline copies into a per-session cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from _helpers import save_model


def make_red_model(path: Path, size: tuple[int, int] = (32, 32)) -> Path:
    """A segmentation model whose person probability is sigmoid(40 * (red - 0.5))."""
    h, w = size
    weights = numpy_helper.from_array(np.array([[40.0], [0.0], [0.0]], np.float32), "w")
    bias = numpy_helper.from_array(np.array([-20.0], np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input_1", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["prob"]),
        ],
        "red_person",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [1, h, w, 3])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, h, w, 1])],
        [weights, bias],
    )
    return save_model(graph, path)


@pytest.fixture
def red_model(tmp_path: Path) -> Path:
    """Path of the tiny red-is-person model."""
    return make_red_model(tmp_path / "red.onnx")


def _red_blue_frame(size: tuple[int, int] = (120, 160)) -> np.ndarray:
    """A BGR frame: the left half red (person), the right half a blue-green ramp (background)."""
    h, w = size
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, : w // 2, 2] = 230
    ramp = np.linspace(0, 255, w - w // 2, dtype=np.float32)
    frame[:, w // 2 :, 0] = 200
    frame[:, w // 2 :, 1] = ramp.astype(np.uint8)[None, :]
    frame[::8, w // 2 :, :2] = 30  # stripes: texture for the blur to remove
    return frame


@pytest.fixture
def red_blue_frame() -> Callable[..., np.ndarray]:
    """Factory of BGR frames: the left half red (person), the right half textured background."""
    return _red_blue_frame


@pytest.fixture(scope="session")
def zoo_cache(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """EDGEOPT_MODELS_DIR / EDGEOPT_CACHE_DIR set for the session; skips without the models."""
    if not (models_dir / "mediapipe-selfie" / "selfie_segmentation.tflite").is_file():
        pytest.skip(f"the verified MediaPipe models are not in {models_dir}")
    cache = tmp_path_factory.mktemp("zoo-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEOPT_MODELS_DIR", str(models_dir))
        mp.setenv("EDGEOPT_CACHE_DIR", str(cache))
        yield cache


@pytest.fixture(scope="session")
def selfie_model(zoo_cache: Path) -> Path:
    """The general MediaPipe selfie model, converted and verified by the zoo."""
    from edgeopt import zoo

    return zoo.pull("mediapipe-selfie", Path(os.environ["EDGEOPT_MODELS_DIR"]))
