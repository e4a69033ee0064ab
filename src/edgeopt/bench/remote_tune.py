"""MetaSchedule tuning measured on a remote device (its ``RPCRunner``), into the TVM database.

`tune_remote` builds candidates here (the TVM backend's `PooledBuilder`, which keeps its
workers) and has MetaSchedule's ``RPCRunner`` time them on a device behind a TVM RPC tracker.
The records go into the TVM backend's own tuning database for the model and the device's
target, so compiling afterwards with ``use_database=True`` and that target builds the tuned
model, here or in `edgeopt.bench.remote.measure_remote`. The scratch copy is published into
the database only when tuning succeeds, workloads first, as `edgeopt.backends.tvm_tune` does.

The model is lowered here the way `edgeopt.backends.tvm` does it (the same passes in the same
order, so workloads match the backend's), since the backend has no public lowering step, and
MetaSchedule's own ``tune_relax`` runs the search, since ``tvm_tune.tune`` takes no runner:
unlike the local path, records already in the database are not skipped and there is no time
budget, only trials.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeopt._api import load
from edgeopt.artifact import ModelArtifact
from edgeopt.backends.base import parse_options
from edgeopt.backends.tvm import TvmBackend, TvmOptions, default_cache_dir
from edgeopt.bench.remote import RemoteDevice, connect, resolve_target
from edgeopt.errors import BackendError, BenchmarkError, ConfigError

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


def _lower(model: ModelArtifact, opts: TvmOptions, target: Any) -> Any:
    """The Relax module the TVM backend tunes: the same passes, in the same order."""
    import tvm  # type: ignore[import-untyped]
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx  # type: ignore[import-untyped]

    mod = from_onnx(model.proto(), keep_params_in_input=False)
    if opts.rewrite:
        from edgeopt.backends.tvm_rewrite import rewrite_for_cpu

        mod, _ = rewrite_for_cpu(mod)
    with target:
        mod = tvm.transform.Sequential(
            [
                relax.transform.DecomposeOpsForInference(),
                relax.transform.CanonicalizeBindings(),
                relax.pipeline.zero_pipeline(),
            ]
        )(mod)
    if opts.prepack:
        mod = relax.transform.AttachAttrLayoutFreeBuffers()(mod)
    return mod


@contextmanager
def _work_copy(database: Path) -> Iterator[Path]:
    """A scratch copy of the database; its files replace the originals only on success."""
    files = ("database_workload.json", "database_tuning_record.json")
    with tempfile.TemporaryDirectory(prefix=".tune-remote-", dir=database.parent) as work:
        for name in files:
            if (database / name).exists():
                shutil.copyfile(database / name, Path(work) / name)
        yield Path(work)
        for name in files:  # workloads first: records only ever name workloads that exist
            if (Path(work) / name).exists():
                tmp = database / f".{name}.tmp"
                shutil.copyfile(Path(work) / name, tmp)
                tmp.replace(database / name)


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
    import tvm
    from tvm.s_tir import meta_schedule as ms  # type: ignore[import-untyped]

    from edgeopt.backends import tvm_tune

    if trials < 1:
        raise ConfigError(f"tune_remote needs at least 1 trial, got {trials}")
    artifact = model if isinstance(model, ModelArtifact) else load(model)
    backend = TvmBackend()
    opts: TvmOptions = parse_options(backend, options)
    session = connect(device)  # checks the device is there, and asks its target
    target_dict = resolve_target(session, device, opts)
    del session  # MetaSchedule's runner asks the tracker for sessions of its own
    t0 = time.monotonic()
    try:
        target = tvm.target.Target(target_dict)
    except Exception as e:
        raise ConfigError(f"bad options for backend 'tvm': target {target_dict!r}: {e}") from e
    try:
        mod = _lower(artifact, opts, target)
    except Exception as e:
        raise BackendError(f"tvm could not lower {artifact.path} for tuning: {e}") from e
    root = Path(opts.cache_dir) if opts.cache_dir else default_cache_dir()
    database = tvm_tune.database_dir(root, artifact.sha256(), target_dict)
    tvm_tune.open_database(database)  # moves a corrupt database aside
    threads = opts.threads or 1
    runner = ms.runner.RPCRunner(
        rpc_config=ms.runner.RPCConfig(
            tracker_host=device.host,
            tracker_port=device.port,
            tracker_key=device.key,
            session_priority=1,
            session_timeout_sec=int(device.session_timeout_s) or 600,
        ),
        evaluator_config=ms.runner.EvaluatorConfig(
            number=2, repeat=1, min_repeat_ms=10, enable_cpu_cache_flush=False
        ),
        max_workers=1,
    )
    builder = tvm_tune.PooledBuilder(max_workers=threads)
    try:
        with _work_copy(database) as work, tvm_tune.meta_schedule_logging():
            db = ms.relax_integration.tune_relax(
                mod,
                params={},
                target=target,
                work_dir=str(work),
                max_trials_global=trials,
                num_trials_per_iter=min(16, trials),
                builder=builder,
                runner=runner,
                database=ms.database.JSONDatabase(work_dir=str(work)),
                cost_model="random" if trials < 64 else "xgb",
                # Smaller than MetaSchedule's defaults (512, 50), as in tvm_tune: under a short
                # budget more rounds beat a wider search.
                strategy=ms.search_strategy.EvolutionarySearch(
                    population_size=128,
                    init_min_unmeasured=16,
                    max_fail_count=1,
                    genetic_max_fail_count=2,
                ),
            )
            records = len(db.get_all_tuning_records())
    except Exception as e:  # TVM raises its own FFI error types
        raise BenchmarkError(
            f"MetaSchedule tuning of {artifact.path} on device {device.key!r} at "
            f"{device.address} failed: {e}"
        ) from e
    finally:
        builder.shutdown()
    return RemoteTuneReport(str(database), target_dict, records, time.monotonic() - t0)
