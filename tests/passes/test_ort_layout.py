"""ort_layout: each rewrite keeps the outputs, changes the structure it says; ORT blocks more."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.artifact import load_onnx
from edgeopt.errors import ConfigError
from edgeopt.passes.base import PassContext
from edgeopt.passes.ort_layout import OrtLayoutPass
from edgeopt.registry import get_pass

Run = Callable[[Path, dict[str, np.ndarray]], np.ndarray]
ONLY = {
    "se_broadcast": False,
    "resize_conv_swap": False,
    "nhwc_input_conv": False,
    "transpose_to_reshape": False,
}


def _only(name: str) -> dict[str, bool]:
    return {**ONLY, name: True}


def _apply(path: Path, workdir: Path, options: dict[str, bool] | None = None) -> onnx.ModelProto:
    result = OrtLayoutPass().apply(load_onnx(path), PassContext(workdir=workdir, options=options))
    assert result.modified and result.skipped is None
    assert result.model.path == workdir / "ort_layout.onnx"
    out = onnx.load(str(result.model.path))
    onnx.checker.check_model(out, full_check=True)
    return out


def _ort_optimized(path: Path, tmp: Path) -> Counter[str]:
    """Op histogram of the model ORT builds for this CPU (ORT_ENABLE_ALL, 1 thread)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    so.optimized_model_filepath = str(tmp)
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return Counter(n.op_type for n in onnx.load(str(tmp)).graph.node)


def _se_graph(builder: type, size: int = 8) -> onnx.GraphProto:
    """Conv 16->16, Relu, squeeze-excite (GAP, 16->8, Relu, 8->16, Sigmoid, Mul), Conv 16->16."""
    g = builder(3)
    x = g.node("Relu", [g.conv("x", 16, 16, 3, name="c1")])
    s = g.node("GlobalAveragePool", [x])
    s = g.node("Relu", [g.conv(s, 16, 8, 1, name="se1")])
    s = g.node("Sigmoid", [g.conv(s, 8, 16, 1, name="se2")])
    m = g.node("Mul", [s, x], name="se_mul")  # the [1,C,1,1] operand first: both orders occur
    return g.graph([1, 16, size, size], g.conv(m, 16, 16, 1, name="c2"), [1, 16, size, size])


def test_se_broadcast_is_exact_and_keeps_the_mul_blocked(
    builder: type, make_model: Callable[..., Path], run: Run, tmp_path: Path
) -> None:
    path = make_model(_se_graph(builder))
    out = _apply(path, tmp_path / "w", _only("se_broadcast"))
    resize = next(n for n in out.graph.node if n.op_type == "Resize")
    mul = next(n for n in out.graph.node if n.op_type == "Mul")
    assert resize.output[0] in mul.input
    attrs = {a.name: helper.get_attribute_value(a) for a in resize.attribute}
    assert attrs["mode"] == b"nearest" and attrs["coordinate_transformation_mode"] == b"asymmetric"
    scales = numpy_helper.to_array(
        next(t for t in out.graph.initializer if t.name == resize.input[2])
    )
    np.testing.assert_array_equal(scales, [1, 1, 8, 8])
    x = np.random.default_rng(0).standard_normal((1, 16, 8, 8)).astype(np.float32)
    new_path = tmp_path / "w" / "ort_layout.onnx"
    np.testing.assert_allclose(run(new_path, {"x": x}), run(path, {"x": x}), atol=1e-5)
    before = _ort_optimized(path, tmp_path / "o1.onnx")
    if not before["ReorderOutput"]:
        pytest.skip("ONNX Runtime does not use its NCHWc layout on this CPU")
    after = _ort_optimized(new_path, tmp_path / "o2.onnx")
    assert after["ReorderOutput"] < before["ReorderOutput"]


def _resize_graph(builder: type, mode: str, use_sizes: bool, k: int = 1) -> onnx.GraphProto:
    g = builder(5)
    x = g.node("Relu", [g.conv("x", 16, 16, 3, name="c1")])
    if use_sizes:
        r_in = [x, "", "", g.const(np.array([1, 16, 16, 12]), "sizes")]
        g.inits[-1] = numpy_helper.from_array(np.array([1, 16, 16, 12], np.int64), "sizes")
    else:
        r_in = [x, "", g.const(np.array([1, 1, 2, 2]), "scales")]
    extra = {"coordinate_transformation_mode": "half_pixel"} if mode == "linear" else {}
    r = g.node("Resize", r_in, name="up", mode=mode, **extra)
    return g.graph([1, 16, 8, 6], g.conv(r, 16, 8, k, name="proj"), [1, 8, 16, 12])


@pytest.mark.parametrize(("mode", "use_sizes"), [("linear", True), ("nearest", False)])
def test_resize_conv_swap_runs_the_conv_at_low_resolution(
    builder: type,
    make_model: Callable[..., Path],
    run: Run,
    tmp_path: Path,
    mode: str,
    use_sizes: bool,
) -> None:
    path = make_model(_resize_graph(builder, mode, use_sizes))
    out = _apply(path, tmp_path / "w", _only("resize_conv_swap"))
    ops = [n.op_type for n in out.graph.node]
    assert ops.index("Resize") > ops.index("Conv", 1)  # the 1x1 conv now precedes the Resize
    resize = next(n for n in out.graph.node if n.op_type == "Resize")
    assert out.graph.node[-1].input[0] == resize.output[0]  # the Resize took the conv's place
    if use_sizes:
        sizes = next(t for t in out.graph.initializer if t.name == resize.input[3])
        np.testing.assert_array_equal(numpy_helper.to_array(sizes), [1, 8, 16, 12])
        assert "sizes" not in {t.name for t in out.graph.initializer}  # the orphan is dropped
    x = np.random.default_rng(1).standard_normal((1, 16, 8, 6)).astype(np.float32)
    got = run(tmp_path / "w" / "ort_layout.onnx", {"x": x})
    np.testing.assert_allclose(got, run(path, {"x": x}), atol=1e-5)


def test_resize_before_a_3x3_conv_is_left_alone(
    builder: type, make_model: Callable[..., Path], tmp_path: Path
) -> None:
    path = make_model(_resize_graph(builder, "linear", False, k=3))
    result = OrtLayoutPass().apply(
        load_onnx(path), PassContext(workdir=tmp_path, options=_only("resize_conv_swap"))
    )
    assert not result.modified and result.skipped is not None
    assert "found" in result.skipped
    assert "near misses: the Conv is not 1x1 (x1)" in result.skipped  # the rule's check says why


@pytest.mark.parametrize(
    ("k", "stride", "pads"), [(3, 2, [0, 0, 1, 1]), (5, 1, [2, 1, 2, 3]), (1, 1, [0, 0, 0, 0])]
)
def test_nhwc_input_conv_drops_the_transpose(
    make_model: Callable[..., Path],
    run: Run,
    tmp_path: Path,
    k: int,
    stride: int,
    pads: list[int],
) -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((16, 3, k, k)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    ho = (12 + pads[0] + pads[2] - k) // stride + 1
    wo = (10 + pads[1] + pads[3] - k) // stride + 1
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["xt", "w", "b"], ["c"], strides=[stride] * 2, pads=pads),
        helper.make_node("Relu", ["c"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "nhwc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 12, 10, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, ho, wo])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    path = make_model(graph)
    out = _apply(path, tmp_path / "w", _only("nhwc_input_conv"))
    assert [n.op_type for n in out.graph.node] == ["Reshape", "Conv", "Relu"]
    conv = out.graph.node[1]
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    assert list(attrs["kernel_shape"]) == [k, 3 * k]
    assert list(attrs["strides"]) == [stride, 3 * stride]
    x = rng.random((1, 12, 10, 3)).astype(np.float32)
    got = run(tmp_path / "w" / "ort_layout.onnx", {"x": x})
    np.testing.assert_allclose(got, run(path, {"x": x}), atol=1e-5)


def test_transpose_of_size_one_axes_becomes_reshape(
    make_model: Callable[..., Path], run: Run, tmp_path: Path
) -> None:
    nodes = [
        helper.make_node("Sigmoid", ["x"], ["s"]),
        helper.make_node("Transpose", ["s"], ["y"], perm=[0, 2, 3, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "out",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 4, 1])],
    )
    path = make_model(graph)
    out = _apply(path, tmp_path / "w", _only("transpose_to_reshape"))
    assert [n.op_type for n in out.graph.node] == ["Sigmoid", "Reshape"]
    x = np.random.default_rng(3).standard_normal((1, 1, 6, 4)).astype(np.float32)
    got = run(tmp_path / "w" / "ort_layout.onnx", {"x": x})
    np.testing.assert_array_equal(got, run(path, {"x": x}))


def test_all_rewrites_together_on_the_tiny_cnn(
    mobilenet_model: Path, run: Run, tmp_path: Path
) -> None:
    out = _apply(mobilenet_model, tmp_path / "w")
    assert Counter(n.op_type for n in out.graph.node)["Resize"] == 1  # the SE broadcast
    x = np.random.default_rng(4).random((1, 3, 16, 16)).astype(np.float32)
    got = run(tmp_path / "w" / "ort_layout.onnx", {"x": x})
    np.testing.assert_allclose(got, run(mobilenet_model, {"x": x}), atol=1e-5)


def test_not_applicable_and_bad_options(conv_model: Path, tmp_path: Path) -> None:
    result = OrtLayoutPass().apply(load_onnx(conv_model), PassContext(workdir=tmp_path))
    assert not result.modified and result.model.path == conv_model
    assert result.skipped is not None and "squeeze-excite" in result.skipped
    with pytest.raises(ConfigError, match=r"ort_layout.*nope"):
        OrtLayoutPass().apply(
            load_onnx(conv_model), PassContext(workdir=tmp_path, options={"nope": True})
        )
    assert isinstance(get_pass("ort_layout"), OrtLayoutPass)


def test_mediapipe_selfie_outputs_unchanged(models_dir: Path, tmp_path: Path) -> None:
    from edgeopt import zoo
    from edgeopt.bench.fidelity import compare_outputs, evaluation_feeds, run_outputs

    source = zoo.pull("mediapipe-selfie", models_dir=models_dir)
    result = OrtLayoutPass().apply(load_onnx(source), PassContext(workdir=tmp_path))
    assert result.report["applied"] == {
        "nhwc_input_conv": 1,
        "se_broadcast": 10,
        "resize_conv_swap": 3,
    }
    # The report lists each match by the tensor it rewrote (nodes may carry no names).
    matches = result.report["matches"]
    assert {k: len(v) for k, v in matches.items() if v} == result.report["applied"]
    assert all(m.startswith("Mul -> ") for m in matches["se_broadcast"])
    feeds = evaluation_feeds(source, count=4)
    reader = zoo.get("mediapipe-selfie").interface.person_probability
    metrics = compare_outputs(run_outputs(source, feeds), run_outputs(result.model, feeds), reader)
    assert metrics.max_abs <= 1e-4 and metrics.iou == 1.0
