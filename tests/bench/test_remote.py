"""Remote measurement over TVM RPC, against a tracker and a server started here on loopback."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from _helpers import conv_weights, save_model

pytest.importorskip("tvm")
pytest.importorskip("tornado")  # the tracker needs it

from edgeopt.artifact import load_onnx
from edgeopt.backends.base import random_feeds
from edgeopt.backends.tvm import TvmBackend
from edgeopt.bench import BenchSettings, Comparison
from edgeopt.bench.remote import measure_remote
from edgeopt.bench.rpc import RemoteDevice, connect, loopback_device, parse_address
from edgeopt.cli.main import app
from edgeopt.errors import BenchmarkError, ConfigError

LOOPBACK = "127.0.0.1"
KEY = "edgeopt-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tracker() -> Iterator[RemoteDevice]:
    """A TVM RPC tracker and one server under KEY, on loopback; stopped afterwards."""
    with loopback_device(KEY) as device:
        yield device.model_copy(update={"timeout_s": 20})


@pytest.fixture
def two_outputs(tmp_path: Path) -> Path:
    """Conv 3x3 + Relu -> y, and Sigmoid(y) -> z: a tiny model with two outputs."""
    w, b = conv_weights()
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c"], ["y"]),
            helper.make_node("Sigmoid", ["y"], ["z"]),
        ],
        "two_outputs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 8, 8]),
        ],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    return save_model(graph, tmp_path / "two.onnx")


def test_measure_remote_matches_local(tracker: RemoteDevice, two_outputs: Path) -> None:
    settings = BenchSettings(warmup=2, runs=25, block=10, seed=3)
    measured = measure_remote(two_outputs, tracker, settings=settings)

    local = TvmBackend().compile(load_onnx(two_outputs), {"target": measured.target})
    feeds = random_feeds(local.inputs, seed=3)
    want = local.run(feeds)
    assert set(measured.outputs) == {"y", "z"}
    for name, value in want.items():
        np.testing.assert_array_equal(measured.outputs[name], value, err_msg=name)
        np.testing.assert_allclose(measured.reference[name], value, rtol=1e-3, atol=1e-4)
        assert measured.max_abs_error[name] < 1e-4

    result = measured.comparison.results[0]
    assert len(result.samples_ms) == 25 and all(s > 0 for s in result.samples_ms)
    assert len(measured.comparison.speedups[result.name]) == 3  # blocks of 10, 10, 5
    assert result.backend == "tvm" and result.name == f"tvm@{KEY}"
    assert measured.comparison.environment["remote"]["key"] == KEY
    again = Comparison.from_json(measured.comparison.to_json())
    assert again.results[0].samples_ms == result.samples_ms


def test_cli_bench_remote(tracker: RemoteDevice, two_outputs: Path, tmp_path: Path) -> None:
    out = tmp_path / "remote.json"
    args = ["bench", str(two_outputs), "--backend", "tvm", "--remote", tracker.address]
    result = CliRunner().invoke(app, [*args, "--key", KEY, "--runs", "7", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert f"tvm@{KEY}" in result.output and "match ONNX Runtime" in result.output
    data = json.loads(out.read_text())
    assert len(data["results"][0]["samples_ms"]) == 7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--remote", "127.0.0.1:9"], "give --backend tvm"),
        (["--backend", "tvm", "--remote", "127.0.0.1:9"], "--key"),
        (["--backend", "tvm", "--key", KEY], "--remote HOST:PORT"),
        (["--backend", "tvm", "--remote", "nohost", "--key", KEY], "not HOST:PORT"),
    ],
)
def test_cli_remote_errors(two_outputs: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["bench", str(two_outputs), *args])
    assert result.exit_code == 1
    assert message in result.output


def test_unreachable_tracker(two_outputs: Path) -> None:
    port = _free_port()  # nothing listens there
    device = RemoteDevice(host=LOOPBACK, port=port, key=KEY, timeout_s=3)
    t0 = time.monotonic()
    with pytest.raises(BenchmarkError, match="cannot reach the TVM RPC tracker") as e:
        measure_remote(two_outputs, device)
    assert time.monotonic() - t0 < 30
    assert f"{LOOPBACK}:{port}" in str(e.value)
    assert "python -m tvm.exec.rpc_tracker" in str(e.value) and f"--key {KEY}" in str(e.value)


def test_unknown_key(tracker: RemoteDevice) -> None:
    device = tracker.model_copy(update={"key": "no-such-board", "timeout_s": 3})
    with pytest.raises(BenchmarkError, match="no device with key 'no-such-board'") as e:
        connect(device)
    assert KEY in str(e.value)  # the keys that are there
    assert f"rpc_server --tracker {tracker.address} --key no-such-board" in str(e.value)


def test_busy_device(tracker: RemoteDevice) -> None:
    held = connect(tracker)
    try:
        with pytest.raises(BenchmarkError, match=r"became free .* within 1 s"):
            connect(tracker.model_copy(update={"timeout_s": 1}))
    finally:
        del held


def test_target_for_another_architecture(tracker: RemoteDevice, two_outputs: Path) -> None:
    target = {"kind": "llvm", "mtriple": "aarch64-linux-gnu"}
    with pytest.raises(ConfigError, match="is for aarch64, but device 'edgeopt-test'"):
        measure_remote(two_outputs, tracker, {"target": target})


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:9190") == ("127.0.0.1", 9190)
    assert parse_address("[::1]:9190") == ("::1", 9190)
    for bad in ("9190", "host:", "host:99999", ":9190"):
        with pytest.raises(ConfigError, match="not HOST:PORT"):
            parse_address(bad)


@pytest.mark.slow
def test_tune_remote_then_measure(tracker: RemoteDevice, two_outputs: Path, tmp_path: Path) -> None:
    from edgeopt.bench.remote_tune import tune_remote

    options = {"cache_dir": str(tmp_path / "cache")}
    report = tune_remote(two_outputs, tracker, trials=4, options=options)
    assert report.records > 0
    assert (Path(report.database) / "database_tuning_record.json").is_file()
    tuned = {**options, "target": report.target, "use_database": True}
    measured = measure_remote(two_outputs, tracker, tuned, BenchSettings(warmup=1, runs=5))
    assert measured.target == report.target
    assert len(measured.comparison.results[0].samples_ms) == 5
    assert max(measured.max_abs_error.values()) < 1e-4


def test_meta_schedule_logging_drops_unnamed_handlers_for_the_run() -> None:
    import logging

    from edgeopt.backends.tvm_tune import meta_schedule_logging

    logger = logging.getLogger("tvm.s_tir.meta_schedule")
    stray = logging.StreamHandler()  # unnamed: MetaSchedule's logging config fails on it
    logger.addHandler(stray)
    try:
        with meta_schedule_logging():
            assert all(h.get_name() is not None for h in logger.handlers)
        assert stray in logger.handlers
    finally:
        logger.removeHandler(stray)
