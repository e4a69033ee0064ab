"""Helpers for the tests: tiny ONNX graphs built in code, and their numpy references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
OPSET = 17


def save_model(graph: onnx.GraphProto, path: Path, opsets: dict[str, int] | None = None) -> Path:
    """Write a graph as an ONNX model (default opset 17) and return its path."""
    imports = [helper.make_opsetid(d, v) for d, v in (opsets or {"": OPSET}).items()]
    model = helper.make_model(graph, opset_imports=imports, producer_name="edgeopt-tests")
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def conv_weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of a 3x3 conv, 3 -> 4 channels."""
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        rng.standard_normal(4).astype(np.float32),
    )


def conv_relu_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Numpy reference of Conv(pad 1, stride 1) + bias + Relu, NCHW."""
    n, _, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd), np.float64)
    for i in range(3):
        for j in range(3):
            patch = xp[:, :, i : i + h, j : j + wd]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return np.maximum(out + b[None, :, None, None], 0).astype(np.float32)


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
