"""Tiny models for the backend tests, built in code: the MediaPipe op mix in miniature, an MLP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from _helpers import save_model


def _init(rng: np.random.Generator, name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)


def mini_selfie(path: Path) -> Path:
    """The MediaPipe selfie model's operator mix in miniature: NHWC in and out, a strided conv,
    HardSwish, a depthwise conv, a squeeze-excite block, a residual add, bilinear resize, a
    transposed conv and a sigmoid head."""
    rng = np.random.default_rng(0)
    n = helper.make_node
    nodes = [
        n("Transpose", ["x"], ["t0"], perm=[0, 3, 1, 2]),
        n("Conv", ["t0", "w1", "b1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        n("HardSwish", ["c1"], ["h1"]),
        n("Conv", ["h1", "wd", "bd"], ["c2"], group=8, pads=[1, 1, 1, 1]),
        n("Relu", ["c2"], ["r2"]),
        n("GlobalAveragePool", ["r2"], ["g"]),
        n("Conv", ["g", "ws", "bs"], ["s1"]),
        n("Sigmoid", ["s1"], ["s2"]),
        n("Mul", ["r2", "s2"], ["se"]),
        n("Add", ["se", "h1"], ["res"]),
        n("Resize", ["res", "", "scales"], ["up"], mode="linear"),
        n("ConvTranspose", ["up", "wt", "bt"], ["ct"], strides=[2, 2], pads=[0, 0, 0, 0]),
        n("Conv", ["ct", "wo", "bo"], ["co"], pads=[1, 1, 1, 1]),
        n("Sigmoid", ["co"], ["so"]),
        n("Transpose", ["so"], ["y"], perm=[0, 2, 3, 1]),
    ]
    inits = [
        _init(rng, "w1", 8, 3, 3, 3),
        _init(rng, "b1", 8),
        _init(rng, "wd", 8, 1, 3, 3),
        _init(rng, "bd", 8),
        _init(rng, "ws", 8, 8, 1, 1),
        _init(rng, "bs", 8),
        _init(rng, "wt", 8, 4, 2, 2),
        _init(rng, "bt", 4),
        _init(rng, "wo", 1, 4, 3, 3),
        _init(rng, "bo", 1),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
    ]
    graph = helper.make_graph(
        nodes,
        "mini_selfie",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 16, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32, 32, 1])],
        inits,
    )
    return save_model(graph, path)


def mlp(path: Path) -> Path:
    """Two inputs, two outputs: MatMul + Add + Relu, and a Softmax."""
    rng = np.random.default_rng(1)
    n = helper.make_node
    graph = helper.make_graph(
        [
            n("MatMul", ["a", "w"], ["m"]),
            n("Add", ["m", "b"], ["s"]),
            n("Relu", ["s"], ["hidden"]),
            n("Softmax", ["hidden"], ["probs"], axis=-1),
        ],
        "mlp",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 16]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 8]),
        ],
        [
            helper.make_tensor_value_info("hidden", TensorProto.FLOAT, [2, 8]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, [2, 8]),
        ],
        [_init(rng, "w", 16, 8)],
    )
    return save_model(graph, path)
