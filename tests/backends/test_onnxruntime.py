"""ONNX Runtime backend: numbers against numpy, options, input checks, save/load, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

import edgeopt
from _helpers import conv_relu_reference, conv_weights
from edgeopt.backends.onnxruntime import OrtOptions
from edgeopt.errors import (
    BackendError,
    ConfigError,
    InputMismatchError,
    UnsupportedOpError,
)

X = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("level", ["disable", "basic", "extended", "all"])
@pytest.mark.parametrize("threads", [1, 2])
def test_matches_numpy_reference(conv_model: Path, level: str, threads: int) -> None:
    compiled = edgeopt.compile(
        conv_model, "onnxruntime", {"threads": threads, "optimization": level}
    )
    y = compiled.run({"x": X})["y"]
    np.testing.assert_allclose(y, conv_relu_reference(X, *conv_weights()), rtol=1e-5, atol=1e-5)


def test_alias_and_typed_options(conv_model: Path) -> None:
    compiled = edgeopt.compile(conv_model, "ort", OrtOptions(threads=1, spinning=False))
    assert compiled.run({"x": X})["y"].shape == (1, 4, 8, 8)


def test_spinning_can_stop_when_a_run_returns(conv_model: Path) -> None:
    import onnxruntime as ort

    from edgeopt.backends.onnxruntime import _session_options

    def entry(options: OrtOptions, key: str) -> str:
        return str(_session_options(ort, options).get_session_config_entry(key))

    assert entry(OrtOptions(spin_stop=True), "session.force_spinning_stop") == "1"
    assert entry(OrtOptions(spinning=False), "session.intra_op.allow_spinning") == "0"
    compiled = edgeopt.compile(conv_model, "ort", {"threads": 2, "spin_stop": True})
    y = compiled.run({"x": X})["y"]
    np.testing.assert_allclose(y, conv_relu_reference(X, *conv_weights()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"threads": 0}, "threads"),
        ({"optimization": "max"}, "optimization"),
        ({"thread": 2}, "thread"),
    ],
)
def test_bad_options_name_the_field(
    conv_model: Path, options: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigError, match=rf"bad options for backend 'onnxruntime': {field}"):
        edgeopt.compile(conv_model, "onnxruntime", options)


def test_unknown_provider(conv_model: Path) -> None:
    with pytest.raises(BackendError, match=r"provider\(s\) \['NoSuchExecutionProvider'\]"):
        edgeopt.compile(conv_model, "onnxruntime", {"providers": ["NoSuchExecutionProvider"]})


@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        ({}, r"missing \['x'\], unexpected \[\]"),
        ({"x": X, "z": X}, r"unexpected \['z'\]"),
        ({"x": X.astype(np.float64)}, "input 'x' has dtype float64, the model wants float32"),
        ({"x": X[:, :2]}, r"input 'x' has shape \(1, 2, 8, 8\), the model wants \(1, 3, 8, 8\)"),
        ({"x": X[0]}, r"has shape \(3, 8, 8\)"),
    ],
)
def test_input_checks(conv_model: Path, feeds: dict[str, np.ndarray], message: str) -> None:
    compiled = edgeopt.compile(conv_model)
    with pytest.raises(InputMismatchError, match=message):
        compiled.run(feeds)


def test_dynamic_dims_accept_any_size(dynamic_model: Path) -> None:
    compiled = edgeopt.compile(dynamic_model)
    x = np.zeros((3, 4, 5), np.float32)
    np.testing.assert_array_equal(compiled.run({"x": x})["y"], x + 1)


def test_no_kernel_is_unsupported_op(make_model) -> None:  # type: ignore[no-untyped-def]
    # ORT's CPU provider has no Abs kernel for bfloat16.
    graph = helper.make_graph(
        [helper.make_node("Abs", ["x"], ["y"], name="the_abs")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [4])],
        [helper.make_tensor_value_info("y", TensorProto.BFLOAT16, [4])],
    )
    with pytest.raises(UnsupportedOpError, match="unsupported operator 'Abs' at node 'the_abs'"):
        edgeopt.compile(make_model(graph))


def test_unknown_custom_op_is_unsupported_op(make_model) -> None:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(
        [helper.make_node("Foo", ["x"], ["y"], domain="my.ops")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    with pytest.raises(UnsupportedOpError, match=r"unsupported operator 'my\.ops:Foo'"):
        edgeopt.compile(make_model(graph, opsets={"": 17, "my.ops": 1}))


def test_save_then_load_in_fresh_process(conv_model: Path, tmp_path: Path) -> None:
    compiled = edgeopt.compile(conv_model, "onnxruntime", {"threads": 1})
    expected = compiled.run({"x": X})["y"]
    saved = compiled.save(tmp_path / "saved")
    assert sorted(p.name for p in saved.iterdir()) == ["edgeopt-ort.json", "model.onnx"]
    np.save(tmp_path / "x.npy", X)
    code = (
        "import sys, numpy as np\n"
        "from edgeopt.registry import get_backend\n"
        f"m = get_backend('onnxruntime').load({str(saved)!r})\n"
        f"y = m.run({{'x': np.load({str(tmp_path / 'x.npy')!r})}})['y']\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, y)\n"
        "assert m.options.threads == 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-6, atol=1e-6)


def test_load_rejects_non_artifact(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="not a saved onnxruntime model"):
        edgeopt.get_backend("onnxruntime").load(tmp_path)
