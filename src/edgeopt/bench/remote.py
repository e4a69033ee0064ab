"""Remote measurement over TVM RPC: compile here, run and time on a device behind a tracker.

TVM's RPC is the established way to measure on edge boards: a tracker
(``python -m tvm.exec.rpc_tracker``) hands out devices registered under a key by servers
(``python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY``) running on the boards. This
module compiles a model with the TVM backend for the device's target (asked of the device
when it can say; a target for another architecture is saved as ``model.tar`` of object files,
which the device's server links itself), uploads the library, loads it in the Relax VM on the
device and times ``main`` there with TVM's ``time_evaluator`` (``number=1``, so each repeat is
one inference and every sample is kept). The result is edgeopt's own `Comparison`, so tables,
charts and JSON work unchanged; the device's outputs are checked against ONNX Runtime run here
on the same feeds before any number is reported.

Reaching the device (tracker, keys, bounded waits, a loopback for tests) is `edgeopt.bench.rpc`.
Tuning on the device with MetaSchedule's RPC runner is `edgeopt.bench.remote_tune`.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.artifact import ModelArtifact, TensorSpec, load_onnx
from edgeopt.backends.base import parse_options, random_feeds
from edgeopt.backends.tvm import TvmBackend, TvmOptions, machine_of
from edgeopt.bench.environment import environment
from edgeopt.bench.harness import BenchSettings
from edgeopt.bench.result import BenchmarkResult, Comparison
from edgeopt.bench.rpc import RemoteDevice, connect, target_for_device
from edgeopt.errors import BenchmarkError
from edgeopt.registry import get_backend

__all__ = [
    "RemoteMeasurement",
    "measure_remote",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteMeasurement:
    """A model measured on a remote device, with its outputs checked against ONNX Runtime.

    Attributes:
        comparison: The measurement as edgeopt's benchmark data (one variant, every sample).
        target: The dict-form target the model was compiled for.
        outputs: The device's outputs, by name.
        reference: ONNX Runtime's outputs here on the same feeds.
        max_abs_error: Largest absolute difference per output.
    """

    comparison: Comparison
    target: dict[str, Any]
    outputs: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    max_abs_error: dict[str, float]


def _library(directory: Path) -> Path:
    meta = json.loads((directory / "edgeopt-tvm.json").read_text())
    return directory / str(meta["library"])


def _run_on_device(
    session: Any,
    library: Path,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    feeds: Mapping[str, np.ndarray],
    settings: BenchSettings,
    threads: int | None,
) -> tuple[dict[str, np.ndarray], list[list[float]]]:
    """Upload, load, run once for outputs, then time in blocks; every sample in ms."""
    import tvm  # type: ignore[import-untyped]
    from tvm import relax

    session.upload(str(library))
    lib = session.load_module(library.name)  # the device's server links a .tar itself
    dev = session.cpu()
    if threads:
        # -3: threads float over all cores, as the TVM backend configures its local pool.
        session.get_function("runtime.config_threadpool")(-3, threads)
    vm = relax.VirtualMachine(lib, dev)
    args = [tvm.runtime.tensor(np.ascontiguousarray(feeds[s.name]), dev) for s in inputs]
    vm.set_input("main", *args)
    vm.invoke_stateful("main")
    got = vm.get_outputs("main")
    values = [got] if hasattr(got, "numpy") else list(got)
    result = {o.name: v.numpy() for o, v in zip(outputs, values, strict=True)}
    if settings.warmup:
        vm.time_evaluator("invoke_stateful", dev, number=1, repeat=settings.warmup)("main")
    timer = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=settings.block)
    rounds: list[list[float]] = []
    if settings.runs is not None:
        left = settings.runs
        while left > 0:
            block = min(settings.block, left)
            if block != settings.block:
                timer = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=block)
            rounds.append([float(s) * 1e3 for s in timer("main").results])
            left -= block
    else:
        deadline = time.monotonic() + float(settings.seconds or 0.0)
        while not rounds or time.monotonic() < deadline:
            rounds.append([float(s) * 1e3 for s in timer("main").results])
    return result, rounds


def measure_remote(
    model: ModelArtifact | str | Path,
    device: RemoteDevice,
    options: TvmOptions | Mapping[str, Any] | None = None,
    settings: BenchSettings | None = None,
    *,
    rtol: float = 1e-3,
    atol: float = 1e-4,
) -> RemoteMeasurement:
    """Compile ``model`` with TVM for the device, then run and time it there.

    Args:
        model: The .onnx model (or a format `edgeopt.load` converts).
        device: The tracker address and device key.
        options: TVM backend options; the target defaults to the one the device reports.
        settings: Warm-up, runs (or seconds), block size and the feeds' seed; timed calls are
            grouped in blocks of ``block`` repeats of TVM's ``time_evaluator``.
        rtol: Relative tolerance of the check against ONNX Runtime.
        atol: Absolute tolerance of the check against ONNX Runtime.

    Returns:
        The measurement, with the device's outputs and ONNX Runtime's.

    Raises:
        BenchmarkError: No device (see `connect`), the device failed, or its outputs differ
            from ONNX Runtime's beyond the tolerance.
        ConfigError: Bad options, or a target that does not fit the device.
        BackendError: TVM failed to compile.
    """
    import tvm

    settings = settings or BenchSettings()
    artifact = model if isinstance(model, ModelArtifact) else load_onnx(model)
    backend = TvmBackend()
    opts = parse_options(TvmOptions, options, backend.name)
    feeds = random_feeds(artifact.inputs, seed=settings.seed)
    reference = get_backend("onnxruntime").compile(artifact).run(feeds)
    session = connect(device)
    target = target_for_device(session, device, opts)
    opts = opts.model_copy(update={"target": target})
    t0 = time.perf_counter()
    compiled = backend.compile(artifact, opts)
    compile_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="edgeopt-remote-") as tmp:
        library = _library(compiled.save(Path(tmp)))
        size = library.stat().st_size
        try:
            outputs, rounds = _run_on_device(
                session,
                library,
                compiled.inputs,
                compiled.outputs,
                feeds,
                settings,
                # Always configured: the device runs with the thread count it was compiled for
                # (num-cores), not whatever its runtime's default pool happens to be.
                opts.threads or target.get("num-cores"),
            )
        except Exception as e:  # TVM raises its own FFI error types, from the device
            raise BenchmarkError(
                f"device {device.key!r} at {device.address} failed running {artifact.path} "
                f"compiled for {target}: {str(e).strip().splitlines()[-1] if str(e) else e}"
            ) from e
    errors = {}
    for name, want in reference.items():
        got = outputs[name]
        errors[name] = float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0))
        if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=atol):
            raise BenchmarkError(
                f"device {device.key!r} at {device.address}: output {name!r} of "
                f"{artifact.path} differs from ONNX Runtime's (max abs error {errors[name]:.3g}, "
                f"shape {got.shape} vs {want.shape}; tolerance rtol={rtol}, atol={atol}); check "
                "the target and the device's TVM runtime version"
            )
    name = f"tvm@{device.key}" + (f"-{opts.threads}t" if opts.threads else "")
    result = BenchmarkResult(
        name=name,
        backend="tvm",
        model=str(artifact.path),
        options=opts.model_dump(mode="json", exclude_defaults=True),
        samples_ms=tuple(s for block in rounds for s in block),
        warmup=settings.warmup,
        compile_s=compile_s,
        peak_rss_mb=float("nan"),  # the device's memory is not observable over RPC
        model_rss_mb=float("nan"),
        model_size_bytes=size,
    )
    remote = {
        "tracker": device.address,
        "key": device.key,
        "target": target,
        "max_abs_error": errors,
        "checked_against": "onnxruntime",
    }
    env: dict[str, Any] = {
        "cpu": f"{device.key} ({target.get('mcpu', target.get('mtriple', 'unknown'))}, remote)",
        "cpu_flags": [],
        "usable_cores": opts.threads,
        "machine": machine_of(str(target.get("mtriple", ""))) or None,
        "versions": {"tvm (compiler)": str(tvm.__version__)},
        "remote": remote,
        "host": environment(),
    }
    comparison = Comparison(
        results=(result,),
        speedups={name: tuple(1.0 for _ in rounds)},
        block=settings.block,
        environment=env,
    )
    return RemoteMeasurement(comparison, target, outputs, reference, errors)
