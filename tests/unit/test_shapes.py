"""Dynamic dimensions: fixed once by --shape or the card, never silently; bad shapes named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from _helpers import save_model
from _helpers import store_card as store
from edgeopt import load
from edgeopt.artifact import load_onnx
from edgeopt.card import ModelCard
from edgeopt.errors import ConfigError
from edgeopt.shapes import check_shapes, dynamic_inputs, with_shapes


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(tmp_path / "cache"))


def test_with_shapes_fixes_and_caches(dynamic_model: Path) -> None:
    art = load_onnx(dynamic_model)
    assert [s.name for s in dynamic_inputs(art.inputs)] == ["x"]
    fixed = with_shapes(art, {"x": (2, 4, 5)})
    assert fixed.inputs[0].shape == (2, 4, 5) and fixed.path != art.path
    session = ort.InferenceSession(str(fixed.path), providers=["CPUExecutionProvider"])
    x = np.ones((2, 4, 5), np.float32)
    assert np.array_equal(session.run(None, {"x": x})[0], x + 1)
    assert with_shapes(art, {"x": (2, 4, 5)}).path == fixed.path  # one file per shape
    assert with_shapes(fixed, {"x": (2, 4, 5)}) is fixed  # already that shape: unchanged
    assert with_shapes(art) is art


def test_bad_shapes_are_named(dynamic_model: Path) -> None:
    specs = load_onnx(dynamic_model).inputs
    with pytest.raises(ConfigError, match=r"no input 'y'; inputs: \['x'\]"):
        check_shapes(specs, {"y": (1,)})
    with pytest.raises(ConfigError, match=r"x=2x3x5 does not fit input 'x' of shape Nx4xN"):
        check_shapes(specs, {"x": (2, 3, 5)})  # axis 1 is fixed at 4
    with pytest.raises(ConfigError, match="does not fit"):
        check_shapes(specs, {"x": (2, 4)})
    with pytest.raises(ConfigError, match="does not fit"):
        check_shapes(specs, {"x": (0, 4, 5)})


def test_minus_one_is_a_dynamic_dimension(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "neg",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 3])],
    )
    art = load_onnx(save_model(graph, tmp_path / "neg.onnx"))
    assert art.inputs[0].shape == (None, 3) and not art.inputs[0].is_static
    assert with_shapes(art, {"x": (4, 3)}).inputs[0].shape == (4, 3)


def test_the_card_gives_default_shapes_and_the_flag_wins(dynamic_model: Path) -> None:
    store(dynamic_model, ModelCard(shapes={"x": (3, 4, 7)}))
    assert load(dynamic_model).inputs[0].shape == (3, 4, 7)
    assert load(dynamic_model, {"x": (1, 4, 2)}).inputs[0].shape == (1, 4, 2)


def test_a_shape_the_graph_refuses_keeps_the_model_dynamic(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Reshape to [2, -1] cannot take 3 elements: ONNX Runtime refuses the static copy (as
    it refuses Silero VAD's with its 8 kHz branch), so the model stays as it was."""
    from onnx import numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "s"], ["y"])],
        "pairs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, None])],
        [numpy_helper.from_array(np.array([2, -1], np.int64), "s")],
    )
    art = load_onnx(save_model(graph, tmp_path / "pairs.onnx"))
    with caplog.at_level("WARNING"):
        assert with_shapes(art, {"x": (3,)}) is art
    assert "kept its dynamic input shapes" in caplog.text and "Reshape" in caplog.text
    assert with_shapes(art, {"x": (3,)}) is art  # remembered, not tried again
    assert with_shapes(art, {"x": (4,)}).inputs[0].shape == (4,)
