"""Tiny CNN graphs for the pass tests, built in code (NCHW)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


class GraphBuilder:
    """Append nodes and random initializers; returns tensor names."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def const(self, value: np.ndarray, name: str | None = None) -> str:
        self.n += 1
        name = name or f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], name: str | None = None, **attrs: object) -> str:
        self.n += 1
        out = f"t{self.n}"
        self.nodes.append(
            helper.make_node(op, inputs, [out], name=name or f"{op}_{self.n}", **attrs)
        )
        return out

    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        k: int = 1,
        group: int = 1,
        name: str | None = None,
        scale: float = 0.5,
    ) -> str:
        w = self.rng.standard_normal((cout, cin // group, k, k)).astype(np.float32) * scale
        b = self.rng.standard_normal(cout).astype(np.float32) * 0.1
        return self.node(
            "Conv", [x, self.const(w), self.const(b)], name=name, pads=[k // 2] * 4, group=group
        )

    def graph(self, x_shape: list[int], y: str, y_shape: list[int]) -> onnx.GraphProto:
        self.nodes.append(helper.make_node("Identity", [y], ["y"], name="out"))
        return helper.make_graph(
            self.nodes,
            "tiny",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
            self.inits,
        )


def mobilenet_graph(seed: int = 0, size: int = 16) -> onnx.GraphProto:
    """Stem conv + HardSwish, an inverted-residual block with squeeze-excite, a sigmoid head.

    x [1,3,S,S] -> conv3x3 3->8 -> HardSwish -> (expand 1x1 8->16 -> Relu -> depthwise 3x3 ->
    Relu -> SE(GAP, 16->4, Relu, 4->16, HardSigmoid, Mul) -> project 1x1 16->8) + skip ->
    conv 1x1 8->1 -> Sigmoid -> y [1,1,S,S].
    """
    g = GraphBuilder(seed)
    stem = g.node("HardSwish", [g.conv("x", 3, 8, 3, name="stem")])
    e = g.node("Relu", [g.conv(stem, 8, 16, 1, name="expand")])
    d = g.node("Relu", [g.conv(e, 16, 16, 3, group=16, name="dw")])
    s = g.node("GlobalAveragePool", [d])
    s = g.node("Relu", [g.conv(s, 16, 4, 1, name="se_reduce")])
    s = g.node("HardSigmoid", [g.conv(s, 4, 16, 1, name="se_expand")])
    m = g.node("Mul", [d, s])
    p = g.conv(m, 16, 8, 1, name="project")
    a = g.node("Add", [p, stem])
    y = g.node("Sigmoid", [g.conv(a, 8, 1, 1, name="head", scale=1.0)])
    return g.graph([1, 3, size, size], y, [1, 1, size, size])


@pytest.fixture
def mobilenet_model(make_model: Callable[..., Path]) -> Path:
    """The tiny inverted-residual model of `mobilenet_graph`, saved."""
    return make_model(mobilenet_graph(), "mobilenet.onnx")


@pytest.fixture
def builder() -> type[GraphBuilder]:
    """The GraphBuilder class."""
    return GraphBuilder


def ort_run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Run a model with ORT (all optimizations) and return its first output."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, feeds)[0])


@pytest.fixture
def run() -> Callable[[Path, dict[str, np.ndarray]], np.ndarray]:
    """`ort_run` as a fixture."""
    return ort_run
