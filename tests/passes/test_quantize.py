"""quantize: dynamic and static QDQ structure and numbers, and the accuracy-aware loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from edgeopt.artifact import load_onnx
from edgeopt.bench.fidelity import compare_outputs, evaluation_feeds
from edgeopt.errors import ConfigError
from edgeopt.passes.base import PassContext
from edgeopt.passes.quantize import QuantizePass, quantized_nodes


def _ops(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def _calib(model: Path, n: int = 6) -> tuple[dict[str, np.ndarray], ...]:
    return evaluation_feeds(model, "builtin", count=n, seed=3, role="calibration")


def _fidelity(a: Path, b: Path, feeds: Any, run: Callable[..., np.ndarray]) -> Any:
    return compare_outputs([run(a, f) for f in feeds], [run(b, f) for f in feeds])


@pytest.mark.parametrize(
    "options",
    [
        {"per_channel": True, "calibration": "minmax"},
        {"per_channel": False, "types": "U8U8", "reduce_range": True},
        {"calibration": "percentile", "percentile": 99.9},
        {"calibration": "entropy"},
    ],
)
def test_static_qdq_is_close(
    mobilenet_model: Path, run: Callable[..., np.ndarray], tmp_path: Path, options: dict[str, Any]
) -> None:
    feeds = _calib(mobilenet_model)
    result = QuantizePass().apply(
        load_onnx(mobilenet_model),
        PassContext(workdir=tmp_path, calibration=feeds, options=options),
    )
    ops = _ops(result.model.path)
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    assert result.report["quantized_nodes"] >= 5
    m = _fidelity(mobilenet_model, result.model.path, feeds, run)
    assert m.cosine > 0.99 and m.max_abs < 0.1


def test_static_exclusions_and_op_types(mobilenet_model: Path, tmp_path: Path) -> None:
    feeds = _calib(mobilenet_model, 3)
    result = QuantizePass().apply(
        load_onnx(mobilenet_model),
        PassContext(
            workdir=tmp_path,
            calibration=feeds,
            options={"op_types": ["Conv"], "exclude_nodes": ["head"], "preprocess": False},
        ),
    )
    quantized = set(quantized_nodes(onnx.load(str(result.model.path))))
    assert "stem" in quantized and "project" in quantized
    assert "head" not in quantized
    assert "Mul_22" not in quantized  # SE multiply reads a float tensor: not an int8 unit


def test_qoperator_format(
    mobilenet_model: Path, run: Callable[..., np.ndarray], tmp_path: Path
) -> None:
    feeds = _calib(mobilenet_model, 3)
    opts = {"format": "qoperator", "op_types": ["Conv"]}
    result = QuantizePass().apply(
        load_onnx(mobilenet_model),
        PassContext(workdir=tmp_path / "q", calibration=feeds, options=opts),
    )
    ops = _ops(result.model.path)
    assert ops.count("QLinearConv") == 7 and "Conv" not in ops  # every conv, depthwise and SE too
    assert "DequantizeLinear" in ops  # back to float for the element-wise ops
    assert _fidelity(mobilenet_model, result.model.path, feeds, run).cosine > 0.99
    again = QuantizePass().apply(result.model, PassContext(workdir=tmp_path / "again"))
    assert again.skipped == "the model is already quantized"
    with pytest.raises(ConfigError, match="format: qdq"):
        QuantizePass().apply(
            load_onnx(mobilenet_model),
            PassContext(workdir=tmp_path / "a", calibration=feeds, options=opts | {"accuracy": {}}),
        )


def test_dynamic_uses_integer_convs(
    mobilenet_model: Path, run: Callable[..., np.ndarray], tmp_path: Path
) -> None:
    result = QuantizePass().apply(
        load_onnx(mobilenet_model),
        PassContext(workdir=tmp_path, options={"mode": "dynamic", "per_channel": False}),
    )
    assert "ConvInteger" in _ops(result.model.path)
    assert "ConvInteger" in result.report["integer_ops"]
    feeds = _calib(mobilenet_model, 2)
    assert _fidelity(mobilenet_model, result.model.path, feeds, run).cosine > 0.98


def test_not_applicable_and_errors(mobilenet_model: Path, tmp_path: Path) -> None:
    feeds = _calib(mobilenet_model, 2)
    first = QuantizePass().apply(
        load_onnx(mobilenet_model), PassContext(workdir=tmp_path / "a", calibration=feeds)
    )
    again = QuantizePass().apply(
        first.model, PassContext(workdir=tmp_path / "b", calibration=feeds)
    )
    assert again.skipped == "the model is already quantized" and not again.modified
    with pytest.raises(ConfigError, match="static mode needs calibration"):
        QuantizePass().apply(load_onnx(mobilenet_model), PassContext(workdir=tmp_path / "c"))
    with pytest.raises(ConfigError, match=r"pass 'quantize'.*per_channel"):
        QuantizePass().apply(
            load_onnx(mobilenet_model),
            PassContext(workdir=tmp_path / "d", options={"per_channel": "sometimes"}),
        )


def _sensitive_model(builder: Any, make_model: Callable[..., Path]) -> Path:
    """Three 1x1 convs; the middle one has one huge weight on a channel that is always zero.

    In fp32 the outlier multiplies zeros and changes nothing, but it sets the per-tensor int8
    scale of the whole weight tensor (~300/127), so every other weight rounds to 0.
    """
    g = builder(seed=4)
    wa = g.rng.standard_normal((8, 3, 1, 1)).astype(np.float32) * 0.5
    ba = np.full(8, 0.1, np.float32)
    ba[0] = -50.0  # channel 0 is always 0 after the Relu
    a = g.node("Relu", [g.node("Conv", ["x", g.const(wa), g.const(ba)], name="conv_a")])
    w = g.rng.standard_normal((8, 8, 1, 1)).astype(np.float32) * 0.3
    w[:, 0] = 300.0
    b = g.node("Relu", [g.node("Conv", [a, g.const(w), g.const(np.zeros(8))], name="sensitive")])
    c = g.conv(b, 8, 4, 1, name="conv_c")
    return make_model(g.graph([1, 3, 12, 12], c, [1, 4, 12, 12]), "sensitive.onnx")


def test_accuracy_aware_keeps_the_sensitive_layer(
    builder: Any, make_model: Callable[..., Path], run: Callable[..., np.ndarray], tmp_path: Path
) -> None:
    model = _sensitive_model(builder, make_model)
    feeds = _calib(model, 6)
    options = {"per_channel": False, "preprocess": False}
    plain = QuantizePass().apply(
        load_onnx(model),
        PassContext(workdir=tmp_path / "plain", calibration=feeds, options=options),
    )
    assert _fidelity(model, plain.model.path, feeds, run).cosine < 0.5

    bound = {"metric": "cosine", "threshold": 0.9, "max_fp32_nodes": 4}
    result = QuantizePass().apply(
        load_onnx(model),
        PassContext(
            workdir=tmp_path / "aware", calibration=feeds, options=options | {"accuracy": bound}
        ),
    )
    acc = result.report["accuracy"]
    assert acc["met"] is True
    assert acc["fp32_nodes"] == ["sensitive"]
    assert max(acc["scores"], key=acc["scores"].get) == "sensitive"
    assert acc["full_int8"]["cosine"] < 0.5
    quantized = quantized_nodes(onnx.load(str(result.model.path)))
    assert "sensitive" not in quantized and "conv_a" in quantized
    assert _fidelity(model, result.model.path, feeds, run).cosine >= 0.9
