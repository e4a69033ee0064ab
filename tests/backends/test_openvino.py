"""OpenVINO backend: numbers against numpy, options, input checks, blob save/load, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

import edgeopt
from _helpers import conv_relu_reference, conv_weights
from edgeopt.errors import BackendError, ConfigError, InputMismatchError, UnsupportedOpError
from edgeopt.registry import get_backend

pytest.importorskip("openvino")

X = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)


@pytest.mark.parametrize("hint", ["LATENCY", "THROUGHPUT"])
@pytest.mark.parametrize("threads", [1, 2])
def test_matches_numpy_reference(conv_model: Path, hint: str, threads: int) -> None:
    compiled = edgeopt.compile(conv_model, "openvino", {"threads": threads, "hint": hint})
    y = compiled.run({"x": X})["y"]
    np.testing.assert_allclose(y, conv_relu_reference(X, *conv_weights()), rtol=1e-4, atol=1e-4)
    # OpenVINO may use fewer threads than asked when cores are busy, never more.
    used = compiled._compiled.get_property("INFERENCE_NUM_THREADS")  # type: ignore[attr-defined]
    assert 1 <= used <= threads


def test_outputs_are_not_reused_buffers(conv_model: Path) -> None:
    compiled = edgeopt.compile(conv_model, "openvino")
    first = compiled.run({"x": X})["y"]
    kept = first.copy()
    compiled.run({"x": -X})
    np.testing.assert_array_equal(first, kept)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"hint": "FAST"}, "hint"), ({"threads": 0}, "threads"), ({"streams": 2}, "streams")],
)
def test_bad_options_name_the_field(
    conv_model: Path, options: dict[str, object], field: str
) -> None:
    with pytest.raises(ConfigError, match=rf"bad options for backend 'openvino': {field}"):
        edgeopt.compile(conv_model, "openvino", options)


def test_input_checks(conv_model: Path) -> None:
    compiled = edgeopt.compile(conv_model, "openvino")
    with pytest.raises(InputMismatchError, match=r"input 'x' has shape \(1, 2, 8, 8\)"):
        compiled.run({"x": X[:, :2]})
    with pytest.raises(InputMismatchError, match="dtype float64"):
        compiled.run({"x": X.astype(np.float64)})


def test_unknown_op_is_unsupported_op(make_model) -> None:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(
        [helper.make_node("Foo", ["x"], ["y"], domain="my.ops", name="the_foo")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    with pytest.raises(
        UnsupportedOpError, match=r"unsupported operator 'my\.ops:Foo' at node 'the_foo'"
    ):
        edgeopt.compile(make_model(graph, opsets={"": 17, "my.ops": 1}), "openvino")


def test_cache_dir_is_filled(conv_model: Path, tmp_path: Path) -> None:
    cache = tmp_path / "ovcache"
    first = edgeopt.compile(conv_model, "openvino", {"cache_dir": str(cache)})
    assert any(cache.iterdir())
    second = edgeopt.compile(conv_model, "openvino", {"cache_dir": str(cache)})
    np.testing.assert_array_equal(first.run({"x": X})["y"], second.run({"x": X})["y"])


def test_save_then_load_in_fresh_process(conv_model: Path, tmp_path: Path) -> None:
    compiled = edgeopt.compile(conv_model, "openvino", {"threads": 1})
    expected = compiled.run({"x": X})["y"]
    saved = compiled.save(tmp_path / "saved")
    assert sorted(p.name for p in saved.iterdir()) == ["edgeopt-openvino.json", "model.blob"]
    np.save(tmp_path / "x.npy", X)
    code = (
        "import sys, numpy as np\n"
        "from edgeopt.registry import get_backend\n"
        f"m = get_backend('openvino').load({str(saved)!r})\n"
        f"y = m.run({{'x': np.load({str(tmp_path / 'x.npy')!r})}})['y']\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, y)\n"
        "assert m.options.threads == 1\n"
        "assert 'onnx' not in [m.split('.')[0] for m in sys.modules if 'frontend' in m]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


def test_load_rejects_missing_and_damaged_blob(conv_model: Path, tmp_path: Path) -> None:
    backend = get_backend("openvino")
    with pytest.raises(BackendError, match="not a saved openvino model"):
        backend.load(tmp_path)
    saved = edgeopt.compile(conv_model, "openvino").save(tmp_path / "saved")
    blob = saved / "model.blob"
    good = blob.read_bytes()
    blob.write_bytes(good[:100])
    with pytest.raises(BackendError, match=r"blob is damaged or was changed .* compile the model"):
        backend.load(saved)
    # Bit flips that OpenVINO's own import accepted (16 of 40 mutations did, some giving wrong
    # outputs) are refused by the sha256 recorded when the blob was written.
    rng = np.random.default_rng(0)
    for _ in range(20):
        mutated = bytearray(good)
        mutated[int(rng.integers(len(good)))] ^= 1 << int(rng.integers(8))
        blob.write_bytes(bytes(mutated))
        with pytest.raises(BackendError, match="blob is damaged or was changed"):
            backend.load(saved)
    blob.write_bytes(good)
    x = np.random.default_rng(1).random((1, 3, 8, 8), dtype=np.float32)
    want = edgeopt.compile(conv_model).run({"x": x})["y"]
    np.testing.assert_allclose(backend.load(saved).run({"x": x})["y"], want, atol=1e-4)
