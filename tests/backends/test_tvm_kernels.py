"""The hand-scheduled TVM kernels against ONNX Runtime, on shapes unlike the selfie model's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeopt
from _helpers import save_model

pytest.importorskip("tvm")


def _model(
    path: Path, node: object, x_shape: list[int], y_shape: list[int], inits: list[object]
) -> Path:
    graph = helper.make_graph(
        [node],  # type: ignore[list-item]
        "kernel",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
        inits,  # type: ignore[arg-type]
    )
    return save_model(graph, path)


def _check(model: Path, x: np.ndarray, kernel: str | None) -> None:
    import onnx
    from tvm.relax.frontend.onnx import from_onnx

    from edgeopt.backends.tvm_rewrite import rewrite_for_cpu

    mod, _ = rewrite_for_cpu(from_onnx(onnx.load(str(model)), keep_params_in_input=False))
    names = {gv.name_hint for gv, _ in mod.functions_items()}
    assert (
        (kernel in names)
        if kernel
        else not names & {"upsample_bilinear_2x", "conv_transpose_blocks"}
    )
    reference = edgeopt.compile(model, "onnxruntime").run({"x": x})["y"]
    y = edgeopt.compile(model, "tvm", {"threads": 2}).run({"x": x})["y"]
    assert y.shape == reference.shape
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-5)


def test_upsample_matches_onnx_resize_on_odd_batched_shapes(tmp_path: Path) -> None:
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "s")
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear")
    model = _model(tmp_path / "resize.onnx", node, [2, 3, 5, 7], [2, 3, 10, 14], [scales])
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 7)).astype(np.float32)
    _check(model, x, "upsample_bilinear_2x")


def test_other_resizes_stay_with_tvm(tmp_path: Path) -> None:
    scales = numpy_helper.from_array(np.array([1, 1, 3, 3], np.float32), "s")
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear")
    model = _model(tmp_path / "resize3.onnx", node, [1, 2, 4, 6], [1, 2, 12, 18], [scales])
    x = np.random.default_rng(2).standard_normal((1, 2, 4, 6)).astype(np.float32)
    _check(model, x, None)


@pytest.mark.parametrize(("cin", "kernel"), [(40, (3, 2)), (5, (2, 2))])
def test_block_conv_transpose_matches_onnx(
    tmp_path: Path, cin: int, kernel: tuple[int, int]
) -> None:
    rng = np.random.default_rng(cin)
    w = numpy_helper.from_array(rng.standard_normal((cin, 3, *kernel)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")
    node = helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], strides=list(kernel))
    model = _model(
        tmp_path / "convt.onnx", node, [2, cin, 6, 5], [2, 3, 6 * kernel[0], 5 * kernel[1]], [w, b]
    )
    x = rng.standard_normal((2, cin, 6, 5)).astype(np.float32)
    _check(model, x, "conv_transpose_blocks")


def test_overlapping_conv_transpose_stays_with_tvm(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    w = numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "w")
    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])
    model = _model(tmp_path / "convt3.onnx", node, [1, 4, 5, 5], [1, 2, 11, 11], [w])
    _check(model, rng.standard_normal((1, 4, 5, 5)).astype(np.float32), None)
