"""simplify: BatchNorm folded into Conv, identities and dead nodes removed, numbers unchanged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeopt.artifact import load_onnx
from edgeopt.passes.base import PassContext
from edgeopt.passes.simplify import SimplifyPass


def test_simplify_folds_bn_and_removes_dead_nodes(
    make_model: Callable[..., Path], run: Callable[..., np.ndarray], tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.random(4).astype(np.float32) + 0.5, "scale"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "bias"),
        numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.random(4).astype(np.float32) + 0.5, "var"),
        numpy_helper.from_array(np.array([2.0], np.float32), "two"),
    ]
    nodes = [
        helper.make_node("Identity", ["x"], ["xi"], name="id"),
        helper.make_node("Conv", ["xi", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node(
            "BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["bn"], name="bn"
        ),
        helper.make_node("Add", ["two", "two"], ["four"], name="const_add"),
        helper.make_node("Mul", ["bn", "four"], ["m"], name="mul"),
        helper.make_node("Add", ["m", "two"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["y"], name="relu"),
        helper.make_node("Neg", ["x"], ["dead"], name="dead"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        inits,
    )
    path = make_model(graph)
    result = SimplifyPass().apply(load_onnx(path), PassContext(workdir=tmp_path / "w"))
    assert result.modified and result.skipped is None
    assert result.report["ops_before"]["BatchNormalization"] == 1
    assert result.report["ops_after"] == {"Conv": 1, "Relu": 1}
    assert result.report["nodes_after"] < result.report["nodes_before"]
    onnx.checker.check_model(onnx.load(str(result.model.path)))
    x = rng.random((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(run(result.model.path, {"x": x}), run(path, {"x": x}), atol=1e-5)


def test_simplify_keeps_the_tiny_cnn_equal(
    mobilenet_model: Path, run: Callable[..., np.ndarray], tmp_path: Path
) -> None:
    result = SimplifyPass().apply(
        load_onnx(mobilenet_model), PassContext(workdir=tmp_path, options={"iterations": 1})
    )
    x = np.random.default_rng(1).random((1, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(
        run(result.model.path, {"x": x}), run(mobilenet_model, {"x": x}), atol=1e-5
    )
    assert "Identity" not in result.report["ops_after"]


def test_hardswish_fusion_waits_for_opset_14(
    make_model: Callable[..., Path], run: Callable[..., np.ndarray], tmp_path: Path
) -> None:
    """x * HardSigmoid(x) is HardSwish only from opset 14 (PP-OCR's classifier is opset 11)."""
    graph = helper.make_graph(
        [
            helper.make_node("HardSigmoid", ["x"], ["hs"], alpha=1 / 6, beta=0.5),
            helper.make_node("Mul", ["x", "hs"], ["y"]),
        ],
        "hswish",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    x = np.array([[-4.0, -1.0, 0.5, 4.0]], np.float32)
    for opset, fused in ((11, False), (14, True)):
        path = make_model(graph, f"hs{opset}.onnx", {"": opset})
        result = SimplifyPass().apply(load_onnx(path), PassContext(workdir=tmp_path / f"{opset}"))
        onnx.checker.check_model(onnx.load(str(result.model.path)))  # valid at its opset
        assert ("HardSwish" in result.report["ops_after"]) == fused
        assert ("notes" in result.report) != fused
        np.testing.assert_allclose(run(result.model.path, {"x": x}), run(path, {"x": x}), atol=1e-6)
