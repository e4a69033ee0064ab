"""TVM backend: numbers against numpy, targets, tuning database, save/load, damaged artifacts."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeopt
from _helpers import conv_relu_reference, conv_weights, save_model
from edgeopt.errors import BackendError, ConfigError, InputMismatchError, UnsupportedOpError
from edgeopt.registry import get_backend

pytest.importorskip("tvm")

X = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
AARCH64 = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-a72", "num-cores": 4}


@pytest.mark.parametrize("threads", [1, 2])
def test_untuned_matches_numpy_reference(conv_model: Path, threads: int) -> None:
    compiled = edgeopt.compile(conv_model, "tvm", {"threads": threads})
    y = compiled.run({"x": X})["y"]
    np.testing.assert_allclose(y, conv_relu_reference(X, *conv_weights()), rtol=1e-4, atol=1e-4)
    assert compiled.tuning is None  # type: ignore[attr-defined]
    with pytest.raises(InputMismatchError, match=r"input 'x' has shape \(1, 2, 8, 8\)"):
        compiled.run({"x": X[:, :2]})


def test_nhwc_layout_keeps_the_numbers_and_reaches_the_kernels(conv_model: Path) -> None:
    compiled = edgeopt.compile(conv_model, "tvm", {"layout": "NHWC"})
    y = compiled.run({"x": X})["y"]
    np.testing.assert_allclose(y, conv_relu_reference(X, *conv_weights()), rtol=1e-4, atol=1e-4)
    from edgeopt.backends.tvm import TvmBackend, TvmOptions, host_target

    tvm = pytest.importorskip("tvm")
    mod = TvmBackend().lower(
        edgeopt.load(conv_model), TvmOptions(layout="NHWC"), tvm.target.Target(host_target())
    )
    names = [gv.name_hint for gv in mod.functions]
    assert sum(n.startswith("transpose") for n in names) == 2  # into NHWC and back, once each
    with pytest.raises(ConfigError, match=r"layout: Input should be 'NCHW' or 'NHWC'"):
        edgeopt.compile(conv_model, "tvm", {"layout": "NCHW16c"})


def test_target_detected_as_dict(conv_model: Path) -> None:
    compiled = edgeopt.compile(conv_model, "tvm", {"threads": 2})
    target = compiled.target  # type: ignore[attr-defined]
    assert target["kind"] == "llvm"
    assert target["num-cores"] == 2
    assert "mcpu" in target


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("llvm -mcpu=znver3", r"target: Input should be a valid dictionary"),
        ({"mcpu": "znver3"}, r"target .* has no 'kind'"),
        ({"kind": "no-such-kind"}, r"target \{'kind': 'no-such-kind'\}"),
    ],
)
def test_bad_targets_are_config_errors(conv_model: Path, target: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        edgeopt.compile(conv_model, "tvm", {"target": target})


def test_cross_target_compiles_and_saves_but_does_not_run_here(
    conv_model: Path, tmp_path: Path
) -> None:
    compiled = edgeopt.compile(conv_model, "tvm", {"target": AARCH64})
    with pytest.raises(BackendError, match="compiled for aarch64 and cannot run on this"):
        compiled.run({"x": X})
    saved = compiled.save(tmp_path / "arm")
    assert (saved / "model.tar").stat().st_size > 0
    meta = json.loads((saved / "edgeopt-tvm.json").read_text())
    assert meta["target"] == AARCH64
    with pytest.raises(BackendError, match="compiled for aarch64; load it on that device"):
        get_backend("tvm").load(saved)


def test_unknown_op_is_unsupported_op(make_model) -> None:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(
        [helper.make_node("Foo", ["x"], ["y"], domain="my.ops", name="the_foo")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    with pytest.raises(UnsupportedOpError, match=r"'my\.ops:Foo' at node 'the_foo'"):
        edgeopt.compile(make_model(graph, opsets={"": 17, "my.ops": 1}), "tvm")


def two_convs(path: Path) -> Path:
    """Conv + Relu then a second Conv: two tuning tasks (two convolutions do not fuse)."""
    rng = np.random.default_rng(2)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", "w2"], ["y"], pads=[1, 1, 1, 1]),
        ],
        "two_convs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [
            numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w1"),
            numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w2"),
        ],
    )
    return save_model(graph, path)


def _tuned_workloads(records: Path) -> set[int]:
    return {json.loads(line)[0] for line in records.read_text().splitlines() if line.strip()}


def test_tuning_is_kept_reused_budgeted_and_rebuilt_when_corrupt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = two_convs(tmp_path / "two_convs.onnx")
    cache = str(tmp_path / "cache")
    options = {"threads": 1, "tune_trials": 8, "trials_per_task": 4, "cache_dir": cache}
    reference = edgeopt.compile(model, "onnxruntime").run({"x": X})["y"]

    first = edgeopt.compile(model, "tvm", options)
    report = first.tuning  # type: ignore[attr-defined]
    assert (report.tasks, report.tasks_tuned, report.rebuilt) == (2, 2, False)
    assert report.trials == 8
    np.testing.assert_allclose(first.run({"x": X})["y"], reference, rtol=1e-4, atol=1e-4)
    db = Path(report.database)
    records = db / "database_tuning_record.json"
    assert len(_tuned_workloads(records)) == 2
    saved = {p.name: p.read_bytes() for p in db.iterdir() if p.is_file()}

    # The same model and target again: every task has a record, nothing is tuned or written.
    second = edgeopt.compile(model, "tvm", options)
    assert (second.tuning.tasks_tuned, second.tuning.trials) == (0, 0)  # type: ignore[attr-defined]
    assert {p.name: p.read_bytes() for p in db.iterdir() if p.is_file()} == saved
    np.testing.assert_allclose(second.run({"x": X})["y"], reference, rtol=1e-4, atol=1e-4)

    # retune: the kernels with records are tuned further, from their records.
    again = edgeopt.compile(model, "tvm", {**options, "retune": True})
    assert (again.tuning.tasks_tuned, again.tuning.trials) == (2, 8)  # type: ignore[attr-defined]
    assert len(_tuned_workloads(records)) == 2  # the same kernels, more records
    assert len(records.read_text().splitlines()) > len(saved[records.name].splitlines())

    applied = edgeopt.compile(
        model, "tvm", {"threads": 1, "use_database": True, "cache_dir": cache}
    )
    assert applied.tuning is None  # type: ignore[attr-defined]
    np.testing.assert_array_equal(applied.run({"x": X})["y"], again.run({"x": X})["y"])

    # A half-written last line: moved aside with a warning, and tuned again, here under a time
    # budget that is spent at once: the session ends after its first measured batch.
    records.write_text(records.read_text()[:-20])
    budget = {**options, "tune_trials": 1000, "tune_seconds": 0.001}
    with caplog.at_level(logging.WARNING, logger="edgeopt.backends.tvm_tune"):
        third = edgeopt.compile(model, "tvm", budget)
    assert "is corrupt" in caplog.text
    assert list(db.parent.glob(f"{db.name}.corrupt-*"))
    assert third.tuning.rebuilt  # type: ignore[attr-defined]
    assert third.tuning.trials == 4  # type: ignore[attr-defined]
    # Too short a budget for a first round over both kernels: the heavier one only.
    assert (third.tuning.tasks, third.tuning.tasks_tuned) == (2, 1)  # type: ignore[attr-defined]
    assert len(_tuned_workloads(records)) == 1
    np.testing.assert_allclose(third.run({"x": X})["y"], reference, rtol=1e-4, atol=1e-4)


def test_save_then_load_in_fresh_process(conv_model: Path, tmp_path: Path) -> None:
    compiled = edgeopt.compile(conv_model, "tvm", {"threads": 2})
    expected = compiled.run({"x": X})["y"]
    saved = compiled.save(tmp_path / "saved")
    assert sorted(p.name for p in saved.iterdir()) == ["edgeopt-tvm.json", "model.so"]
    np.save(tmp_path / "x.npy", X)
    code = (
        "import sys, numpy as np, tvm\n"
        "from edgeopt.registry import get_backend\n"
        f"m = get_backend('tvm').load({str(saved)!r})\n"
        f"y = m.run({{'x': np.load({str(tmp_path / 'x.npy')!r})}})['y']\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, y)\n"
        "assert m.options.threads == 2\n"
        "assert tvm.runtime.num_threads() == 2, tvm.runtime.num_threads()\n"
        "assert 'tvm.relax.frontend.onnx' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


def test_load_refuses_damaged_or_partial_artifacts(conv_model: Path, tmp_path: Path) -> None:
    backend = get_backend("tvm")
    with pytest.raises(BackendError, match="not a saved tvm model"):
        backend.load(tmp_path)
    saved = edgeopt.compile(conv_model, "tvm").save(tmp_path / "saved")
    library = saved / "model.so"
    good = library.read_bytes()
    library.write_bytes(good[: len(good) // 2])
    with pytest.raises(BackendError, match=r"the library is damaged .* compile the model again"):
        backend.load(saved)
    library.unlink()
    with pytest.raises(BackendError, match=r"model\.so is missing"):
        backend.load(saved)


def test_cpu_rewrites_apply_and_keep_the_numbers(tmp_path: Path) -> None:
    import onnx
    import tvm
    from tvm.relax.frontend.onnx import from_onnx

    from backends._models import mini_selfie
    from edgeopt.backends.tvm_rewrite import rewrite_for_cpu

    model = mini_selfie(tmp_path / "mini_selfie.onnx")
    mod, count = rewrite_for_cpu(from_onnx(onnx.load(str(model)), keep_params_in_input=False))
    assert count == 4  # the 2x bilinear Resize, the 2x2/stride-2 ConvTranspose, two Sigmoids
    kernels = {gv.name_hint for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc)}
    assert {"upsample_bilinear_2x", "conv_transpose_blocks"} <= kernels
    assert any(k.startswith("fast_tanh") for k in kernels)  # the sigmoids, vectorizable
    assert "sigmoid" not in mod.script()
    x = np.random.default_rng(4).random((1, 16, 16, 3), dtype=np.float32)
    reference = edgeopt.compile(model, "onnxruntime").run({"x": x})["y"]
    for rewrite in (False, True):
        y = edgeopt.compile(model, "tvm", {"rewrite": rewrite}).run({"x": x})["y"]
        np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-6)


def test_lower_is_the_module_compile_builds(tmp_path: Path) -> None:
    import tvm

    from backends._models import mini_selfie
    from edgeopt.backends.tvm import TvmBackend, TvmOptions

    model = edgeopt.load(mini_selfie(tmp_path / "mini_selfie.onnx"))
    target = tvm.target.Target({"kind": "llvm"})
    for rewrite in (True, False):
        mod = TvmBackend().lower(model, TvmOptions(rewrite=rewrite), target)
        names = {gv.name_hint for gv, _ in mod.functions_items()}
        assert ("upsample_bilinear_2x" in names) == rewrite
        assert ("conv_transpose_blocks" in names) == rewrite
        assert "main" in names


def test_resize_with_empty_scales_and_sizes_imports(make_model) -> None:  # type: ignore[no-untyped-def]
    """tf2onnx writes Resize(x, roi, scales=[], sizes): ORT runs it, TVM's importer did not."""
    empty = numpy_helper.from_array(np.zeros((0,), np.float32), "scales")
    roi = numpy_helper.from_array(np.zeros((0,), np.float32), "roi")
    sizes = numpy_helper.from_array(np.array([1, 3, 16, 16], np.int64), "sizes")
    graph = helper.make_graph(
        [
            helper.make_node(
                "Resize",
                ["x", "roi", "scales", "sizes"],
                ["y"],
                mode="linear",
                coordinate_transformation_mode="half_pixel",
            )
        ],
        "tf2onnx_resize",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 16, 16])],
        [roi, empty, sizes],
    )
    path = make_model(graph, "resize.onnx", {"": 13})
    want = edgeopt.compile(path).run({"x": X})["y"]
    got = edgeopt.compile(path, "tvm").run({"x": X})["y"]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_thread_pool_defaults_to_the_usable_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """TVM sized its pool from a guess of physical cores: one thread on a 2-vCPU VM."""
    import os

    import tvm  # type: ignore[import-untyped]

    from edgeopt.backends.tvm import _set_threads

    monkeypatch.delenv("TVM_NUM_THREADS", raising=False)
    _set_threads(tvm, None)
    assert os.environ["TVM_NUM_THREADS"] == str(len(os.sched_getaffinity(0)))
    monkeypatch.setenv("TVM_NUM_THREADS", "1")  # the user's choice wins
    _set_threads(tvm, None)
    assert os.environ["TVM_NUM_THREADS"] == "1"
    _set_threads(tvm, 3)  # an explicit option wins over both
    assert os.environ["TVM_NUM_THREADS"] == "3"


def test_save_and_load_keep_stderr_clean_but_pass_other_lines(
    conv_model: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import os

    from edgeopt.backends.tvm_errors import quiet_tvm_log

    edgeopt.compile_to(conv_model, "tvm", None, tmp_path / "art")
    edgeopt.load_compiled(tmp_path / "art")
    with quiet_tvm_log():
        os.write(2, b"[1] /x/executable.cc:276: Warning: Scope Saving:\nsomething else\n")
    err = capfd.readouterr().err
    assert "Scope" not in err  # TVM's empty warnings on every save and load are dropped
    assert "something else" in err  # anything else TVM writes still reaches the user


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="no CPU affinity here")
@pytest.mark.parametrize("threads", [1, 2])
def test_running_tvm_leaves_the_process_on_all_its_cpus(conv_model: Path, threads: int) -> None:
    """TVM's pool binds the thread that configures it to one core; a process that also runs
    other work (auto, the app, a parent starting benchmark workers) must not stay there."""
    before = os.sched_getaffinity(0)
    edgeopt.compile(conv_model, "tvm", {"threads": threads}).run({"x": X})
    assert os.sched_getaffinity(0) == before
