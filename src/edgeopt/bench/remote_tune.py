"""MetaSchedule tuning measured on a remote device (its ``RPCRunner``), into the TVM database.

`tune_remote` builds candidates here (the TVM backend's `PooledBuilder`, which keeps its
workers) and has MetaSchedule's ``RPCRunner`` time them on a device behind a TVM RPC tracker.
The records go into the TVM backend's own tuning database for the model and the device's
target, so compiling afterwards with ``use_database=True`` and that target builds the tuned
model, here or in `edgeopt.bench.remote.measure_remote`.

The model is lowered by `TvmBackend.lower` and tuned by `edgeopt.backends.tvm_tune.tune` with
the remote runner, so everything the local path does holds here too: workloads match the
backend's, tasks with records are skipped, hand-scheduled kernels are not tuned, and the
database is written through a scratch copy.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeopt.artifact import ModelArtifact, load_onnx
from edgeopt.backends.base import parse_options
from edgeopt.backends.tvm import TvmBackend, TvmOptions, default_cache_dir
from edgeopt.bench.rpc import RemoteDevice, connect, target_for_device
from edgeopt.errors import BenchmarkError, ConfigError

__all__ = ["RemoteTuneReport", "tune_remote"]


@dataclass(frozen=True)
class RemoteTuneReport:
    """What one tuning session on a remote device did.

    Attributes:
        database: The tuning database folder (the TVM backend's, for this model and target).
        target: The dict-form target tuned for.
        records: Tuning records in the database afterwards.
        seconds: Wall time of the session.
    """

    database: str
    target: dict[str, Any]
    records: int
    seconds: float


def tune_remote(
    model: ModelArtifact | str | Path,
    device: RemoteDevice,
    trials: int,
    options: TvmOptions | Mapping[str, Any] | None = None,
) -> RemoteTuneReport:
    """Tune ``model`` with MetaSchedule, building here and measuring on the device (RPCRunner).

    The records go into the TVM backend's database for this model and target, so
    ``compile(model, "tvm", {"target": report.target, "use_database": True})`` (or
    `measure_remote` with those options) builds the tuned model for the device.

    Args:
        model: The .onnx model.
        device: The tracker address and device key.
        trials: Most candidates to measure in all.
        options: TVM backend options (``target``, ``threads``, ``rewrite``, ``prepack``,
            ``cache_dir``); the target defaults to the one the device reports.

    Raises:
        BenchmarkError: No device, or MetaSchedule failed.
        ConfigError: Bad options or a target that does not fit the device.
    """
    import tvm  # type: ignore[import-untyped]
    from tvm.s_tir import meta_schedule as ms  # type: ignore[import-untyped]

    from edgeopt.backends import tvm_tune

    if trials < 1:
        raise ConfigError(f"tune_remote needs at least 1 trial, got {trials}")
    artifact = model if isinstance(model, ModelArtifact) else load_onnx(model)
    backend = TvmBackend()
    opts = parse_options(TvmOptions, options, backend.name)
    session = connect(device)  # checks the device is there, and asks its target
    target_dict = target_for_device(session, device, opts)
    del session  # MetaSchedule's runner asks the tracker for sessions of its own
    t0 = time.monotonic()
    try:
        target = tvm.target.Target(target_dict)
    except Exception as e:
        raise ConfigError(f"bad options for backend 'tvm': target {target_dict!r}: {e}") from e
    mod = backend.lower(artifact, opts, target)
    root = Path(opts.cache_dir) if opts.cache_dir else default_cache_dir()
    database = tvm_tune.database_dir(root, artifact.sha256(), target_dict)
    runner = ms.runner.RPCRunner(
        rpc_config=ms.runner.RPCConfig(
            tracker_host=device.host,
            tracker_port=device.port,
            tracker_key=device.key,
            session_priority=1,
            session_timeout_sec=int(device.session_timeout_s) or 600,
        ),
        evaluator_config=tvm_tune.EVALUATOR,
        max_workers=1,
    )
    try:
        tvm_tune.tune(
            mod, target, database, trials=trials, threads=opts.threads or 1, runner=runner
        )
        db, _ = tvm_tune.open_database(database)
        records = len(db.get_all_tuning_records())
    except Exception as e:  # BackendError from tune; TVM raises its own FFI error types
        raise BenchmarkError(
            f"MetaSchedule tuning of {artifact.path} on device {device.key!r} at "
            f"{device.address} failed: {e}"
        ) from e
    return RemoteTuneReport(str(database), target_dict, records, time.monotonic() - t0)
