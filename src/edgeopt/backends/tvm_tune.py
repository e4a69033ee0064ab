"""MetaSchedule tuning for the TVM backend: a persistent database, a budget, cheap builds.

What this adds around TVM's own ``tvm.s_tir.meta_schedule`` (which does the search):

- **A persistent database per model and target.** Records live in
  ``<root>/<model sha256[:16]>-<target hash[:12]>/`` as MetaSchedule's JSON database. Before
  tuning, tasks whose workload already has a record are dropped, so tuning the same model twice
  tunes nothing the second time (MetaSchedule itself would spend the whole budget again).
- **Never a half-written database.** Tuning runs on a copy in a temporary folder; the two files
  are renamed into place only afterwards (workloads first: the record file only ever names
  workloads that exist). A database that fails to parse is moved aside with a warning and
  rebuilt by tuning again.
- **Heaviest kernels first.** Tasks are ordered by estimated FLOPs x weight, so a short budget
  goes to the convolutions that dominate latency.
- **A trial and a time budget.** MetaSchedule knows only trials; a measure callback ends the
  session at the first measurement past the deadline, and what was measured so far is kept.
- **No worker start-up per batch.** MetaSchedule's ``LocalBuilder`` starts a fresh pool of
  processes for every batch, and each one re-imports ``tvm.s_tir.tensor_intrin`` (13 s on this
  machine, 30-40 s on slower ones). `PooledBuilder` keeps one pool for the whole session (the
  import is paid once per worker) with a per-candidate timeout; building in this process was
  tried first and dropped: one pathological candidate then stalls tuning for minutes.
- **Torch hidden from the workers.** ``tvm_ffi`` imports torch whenever it is installed, which
  costs every worker seconds of start-up; builder and runner workers start with a
  ``PYTHONPATH`` shim in which ``import torch`` fails fast.

Hand-written here because MetaSchedule has no database keyed by model, no time budget and no
builder that keeps its workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tvm  # type: ignore[import-untyped]
from tvm.ir.utils import derived_object  # type: ignore[import-untyped]
from tvm.s_tir import meta_schedule as ms  # type: ignore[import-untyped]
from tvm.s_tir.meta_schedule.builder import (  # type: ignore[import-untyped]
    BuilderResult,
    PyBuilder,
)
from tvm.s_tir.meta_schedule.measure_callback import (  # type: ignore[import-untyped]
    PyMeasureCallback,
)

from edgeopt.errors import BackendError

__all__ = [
    "EVALUATOR",
    "PooledBuilder",
    "TuneReport",
    "apply_database",
    "build_candidate",
    "database_dir",
    "open_database",
    "target_key",
    "tune",
]

logger = logging.getLogger(__name__)

_FILES = ("database_workload.json", "database_tuning_record.json")

# MetaSchedule's default (min 100 ms per candidate) spends most of a small budget timing; 10 ms
# still ranks kernels of a few microseconds reliably.
EVALUATOR = ms.runner.EvaluatorConfig(
    number=2, repeat=1, min_repeat_ms=10, enable_cpu_cache_flush=False
)


@dataclass(frozen=True)
class TuneReport:
    """What one tuning session did.

    Attributes:
        database: The database folder.
        tasks: Tuning tasks (fused kernels) in the model.
        tasks_tuned: Tasks tuned in this session (0 when the database had them all).
        trials: Candidates measured in this session.
        seconds: Wall time of this session.
        rebuilt: True when a corrupt database was found and started afresh.
    """

    database: str
    tasks: int
    tasks_tuned: int
    trials: int
    seconds: float
    rebuilt: bool = False


def target_key(target: Mapping[str, Any]) -> str:
    """A stable short hash of a dict-form target."""
    return hashlib.sha256(json.dumps(dict(target), sort_keys=True).encode()).hexdigest()[:12]


def database_dir(root: Path, model_sha256: str, target: Mapping[str, Any]) -> Path:
    """The database folder of one model (by its sha256) on one target."""
    return Path(root) / f"{model_sha256[:16]}-{target_key(target)}"


def _check_json_lines(path: Path) -> None:
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path.name} line {i} is not JSON: {e}") from e


def open_database(directory: Path) -> tuple[Any, bool]:
    """Open (or create) the JSON database in ``directory``.

    A database that does not parse is moved aside to ``<dir>.corrupt-<time>`` with a warning
    and a fresh one is created in its place.

    Returns:
        The database, and whether a corrupt one was replaced.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        for name in _FILES:
            if (directory / name).exists():
                _check_json_lines(directory / name)
        return ms.database.JSONDatabase(work_dir=str(directory)), False
    except Exception as e:  # ValueError from us; TVM raises its own FFI error types
        aside = directory.with_name(f"{directory.name}.corrupt-{int(time.time())}")
        logger.warning(
            "tuning database %s is corrupt (%s); moved it to %s and tuning again",
            directory,
            str(e).splitlines()[0] if str(e) else type(e).__name__,
            aside,
        )
        directory.rename(aside)
        directory.mkdir()
        return ms.database.JSONDatabase(work_dir=str(directory)), True


def build_candidate(mod: Any, target: Any, params: Any) -> Any:
    """Build one candidate in a builder worker (MetaSchedule's ``default_build``, lazier).

    ``default_build`` imports ``tvm.s_tir.tensor_intrin`` for every worker (13 s here); only
    candidates that tensorize (int8 dot-product kernels) need it, so it is imported for those.
    """
    from tvm.driver import build as tvm_build  # type: ignore[import-untyped]
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock  # type: ignore[import-untyped]

    if "tensorize" in mod.script():
        import tvm.s_tir.tensor_intrin  # type: ignore[import-untyped]  # noqa: F401

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


@derived_object
class PooledBuilder(PyBuilder):  # type: ignore[misc]
    """Builds candidates in one pool of worker processes kept for the whole tuning session.

    MetaSchedule's ``LocalBuilder`` starts a new pool for every batch (and each worker pays the
    tensor-intrinsic import again); this one starts its workers once (and imports the
    intrinsics only for candidates that use them, see `build_candidate`), recycles each after
    ``max_uses`` builds (the reason ``LocalBuilder`` restarts them: a slow leak). A candidate
    that takes longer than ``timeout_sec`` to build is killed and reported as failed.
    """

    def __init__(self, max_workers: int, timeout_sec: float = 30.0, max_uses: int = 200) -> None:
        super().__init__()
        from tvm.support.popen_pool import PopenPoolExecutor  # type: ignore[import-untyped]

        with _torch_hidden():
            self.pool = PopenPoolExecutor(
                max_workers=max_workers,
                timeout=timeout_sec,
                maximum_process_uses=max_uses,
            )
        self.timeout_sec = timeout_sec

    def build(self, build_inputs: list[Any]) -> list[Any]:
        """Build each candidate into a library file MetaSchedule's runner can load."""
        from tvm.s_tir.meta_schedule.builder import local_builder as lb
        from tvm.support.popen_pool import StatusKind

        jobs = [(build_candidate, None, b.mod, b.target, None) for b in build_inputs]
        results = []
        with _torch_hidden():  # workers recycled during the batch start without torch too
            for done in self.pool.map_with_error_catching(lambda x: lb._worker_func(*x), jobs):
                if done.status == StatusKind.COMPLETE:
                    results.append(BuilderResult(done.value, None))
                elif done.status == StatusKind.TIMEOUT:
                    results.append(
                        BuilderResult(None, f"PooledBuilder: timeout after {self.timeout_sec} s")
                    )
                else:
                    results.append(BuilderResult(None, f"PooledBuilder: {done.value}"))
        return results

    def shutdown(self) -> None:
        """Stop the worker processes."""
        self.pool.shutdown()


class _BudgetSpent(Exception):
    """Raised by `_Deadline` to end a tuning session whose time budget is spent."""


@derived_object
class _Deadline(PyMeasureCallback):  # type: ignore[misc]
    """Ends tuning once the time budget is spent; counts measured candidates.

    Terminating tasks through the task scheduler does not stop MetaSchedule's first
    round-robin round (it searches every task regardless), so this raises instead; it runs
    after the default callbacks, so the batch just measured is already in the database.
    """

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.trials = 0
        self.spent = False

    def apply(
        self,
        task_scheduler: Any,
        task_id: int,
        measure_candidates: list[Any],
        builder_results: list[Any],
        runner_results: list[Any],
    ) -> None:
        self.trials += len(measure_candidates)
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.spent = True
            raise _BudgetSpent("tuning time budget spent")


@contextlib.contextmanager
def meta_schedule_logging() -> Iterator[None]:
    """While active, MetaSchedule's logger carries only named handlers.

    MetaSchedule builds a ``logging.config`` dict from the *names* of the handlers on its
    ``tvm.s_tir.meta_schedule`` logger and fails on an unnamed one (``'NoneType' object has
    no attribute 'format'``), which other code in the process may have attached. They are
    detached for the tuning run and put back after it.
    """
    logger = logging.getLogger("tvm.s_tir.meta_schedule")
    unnamed = [h for h in logger.handlers if h.get_name() is None]
    for handler in unnamed:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        for handler in unnamed:
            logger.addHandler(handler)


@contextlib.contextmanager
def _torch_hidden() -> Iterator[None]:
    """While active, child processes find a ``torch`` that fails to import at once."""
    with tempfile.TemporaryDirectory(prefix="edgeopt-notorch-") as shim:
        pkg = Path(shim) / "torch"
        pkg.mkdir()
        (pkg / "__init__.py").write_text(
            "raise ImportError('torch is hidden from TVM tuning workers by edgeopt')\n"
        )
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = shim + (os.pathsep + old if old else "")
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old


def _has_record(db: Any, task: Any, target: Any) -> bool:
    mod = task.dispatched[0]
    if not db.has_workload(mod):
        return False
    return bool(db.get_top_k(db.commit_workload(mod), 1))


def _scheduled(task: Any) -> bool:
    # Hand-scheduled kernels (edgeopt.backends.tvm_kernels) carry this attribute on the
    # function; MetaSchedule checks it only on the task's module, so it would tune them.
    func = task.dispatched[0]["main"]
    return bool(func.attrs is not None and func.attrs.get("tirx.is_scheduled", False))


def _work(task: Any) -> float:
    try:
        from tvm.s_tir.analysis import estimate_tir_flops  # type: ignore[import-untyped]

        return float(estimate_tir_flops(task.dispatched[0])) * float(task.weight)
    except Exception:  # an unanalysable kernel is tuned last, not a failure
        return 0.0


def _publish(src: Path, dst: Path) -> None:
    # Workloads first: a record file never names a workload the workload file lacks.
    for name in _FILES:
        if (src / name).exists():
            tmp = dst / f".{name}.tmp"
            shutil.copyfile(src / name, tmp)
            tmp.replace(dst / name)


ROUND_CORE_S = 10.0
"""Core-seconds one task costs in MetaSchedule's first round (its design space, a search and
a batch of 16 built and run): 200 s for the 50 kernels of MediaPipe selfie on 2 cores, plus
the contexts' set-up (2-core Xeon, December 2026)."""


def tune(
    mod: Any,
    target: Any,
    directory: Path,
    trials: int,
    seconds: float | None = None,
    trials_per_task: int | None = None,
    threads: int = 1,
    runner: Any = None,
    again: bool = False,
) -> TuneReport:
    """Tune the kernels of ``mod`` that the database in ``directory`` has no record for.

    With ``again``, the kernels tuned before are tuned further too (after the new ones),
    MetaSchedule's evolutionary search seeded with their best records: a second budget
    continues the first instead of doing nothing.

    Args:
        mod: A legalized, fused Relax module (after the zero pipeline).
        target: The ``tvm.target.Target``.
        directory: The persistent database folder.
        trials: Most candidates to measure in all.
        seconds: Time budget; tuning stops at the first measurement after it, and a budget
            too short for a first round over every task tunes the heaviest that fit.
        trials_per_task: Most candidates per task (default: ``trials`` spread over the tasks).
        threads: Threads for the search itself.
        runner: A MetaSchedule runner (e.g. an ``RPCRunner`` that times candidates on a
            device); default: a local runner on this machine.
        again: Also tune the kernels that have records.

    Returns:
        What was tuned.

    Raises:
        BackendError: MetaSchedule failed.
    """
    t0 = time.monotonic()
    db, rebuilt = open_database(directory)
    extracted = ms.relax_integration.extract_tasks(mod, target)
    # New kernels, then the heaviest: MetaSchedule's first round visits tasks in this order, so
    # a short budget is spent on the convolutions that dominate latency, not on transposes.
    recorded = [(t, _has_record(db, t, target)) for t in extracted if not _scheduled(t)]
    ranked = sorted(
        ((t, r) for t, r in recorded if again or not r),
        key=lambda tr: (not tr[1], _work(tr[0])),
        reverse=True,
    )
    todo = [t for t, _ in ranked]
    if seconds is not None and todo:
        # MetaSchedule's first round searches, builds and sends a batch of every task before
        # any measurement comes back (and before the deadline can be checked): with 50 tasks
        # that round alone takes about 3 minutes on 2 cores. Under a shorter budget only the
        # heaviest kernels that fit in it are tuned.
        fits = max(1, int(seconds * max(1, threads) / ROUND_CORE_S))
        if fits < len(todo):
            logger.info(
                "a %.0f s budget fits a first round over %d of %d tasks: tuning those",
                seconds,
                fits,
                len(todo),
            )
            todo = todo[:fits]
    logger.info("tuning %d of %d tasks into %s", len(todo), len(extracted), directory)
    if not todo or trials <= 0:
        return TuneReport(str(directory), len(extracted), 0, 0, time.monotonic() - t0, rebuilt)
    per_task = trials_per_task or max(8, -(-trials // len(todo)))
    wide = (trials_per_task or 0) >= 256
    callback = _Deadline(t0 + seconds if seconds else None)
    with (
        tempfile.TemporaryDirectory(prefix=".tune-", dir=directory.parent) as work,
        meta_schedule_logging(),  # MetaSchedule configures its loggers while making contexts
    ):
        _publish(directory, Path(work))
        work_db = ms.database.JSONDatabase(work_dir=work)
        contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
            todo,
            work,
            strategy=ms.search_strategy.EvolutionarySearch(
                # MetaSchedule's defaults (512, 50) cost ~25 s of search per conv task per round
                # on two cores; under a short budget more rounds beat a wider search.
                population_size=512 if wide else 128,
                init_min_unmeasured=50 if wide else 16,
                # A kernel with a tiny design space (a fused elementwise chain has one or two
                # schedules) otherwise keeps re-sampling for minutes looking for 16 new ones.
                max_fail_count=5 if wide else 1,
                genetic_max_fail_count=10 if wide else 2,
            ),
            num_threads=threads,
        )
        if runner is None:
            with _torch_hidden():
                runner = ms.runner.LocalRunner(timeout_sec=30.0, evaluator_config=EVALUATOR)
        builder = PooledBuilder(max_workers=threads)
        try:
            ms.tune.tune_tasks(
                tasks=contexts,
                task_weights=weights,
                work_dir=work,
                max_trials_global=trials,
                max_trials_per_task=per_task,
                # Small rounds: every task gets a first round early, so a short budget
                # leaves no kernel with TVM's naive untuned loops.
                num_trials_per_iter=min(16, per_task),
                builder=builder,
                runner=runner,
                database=work_db,
                cost_model=_cost_model(),
                measure_callbacks=[*ms.MeasureCallback.create("default"), callback],
            )
        except Exception as e:  # TVM raises its own FFI error types
            if not callback.spent:
                raise BackendError(f"tvm: MetaSchedule tuning failed in {work}: {e}") from e
            logger.info("tuning budget of %s s spent after %d trials", seconds, callback.trials)
        finally:
            with contextlib.suppress(Exception):
                runner.pool.shutdown()  # a LocalRunner's workers; an RPCRunner has its own
            with contextlib.suppress(Exception):
                builder.shutdown()
        _publish(Path(work), directory)
    return TuneReport(
        str(directory), len(extracted), len(todo), callback.trials, time.monotonic() - t0, rebuilt
    )


def _cost_model() -> str:
    try:
        import xgboost  # noqa: F401
    except ImportError:
        logger.warning("xgboost is not installed: MetaSchedule searches with a random cost model")
        return "random"
    return "xgb"


def apply_database(mod: Any, target: Any, directory: Path) -> Any:
    """Replace each kernel of ``mod`` by its best schedule in the database (if it has one)."""
    db, _ = open_database(directory)
    with target, db:
        return tvm.relax.transform.MetaScheduleApplyDatabase(enable_warning=False)(mod)
