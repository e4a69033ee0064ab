"""Apache TVM backend: ONNX -> Relax -> (MetaSchedule-tuned) machine code for this CPU.

The flow is TVM's own: ``tvm.relax.frontend.onnx.from_onnx`` (weights bound as constants, so
they fold and fuse), the CPU rewrites (`edgeopt.backends.tvm_rewrite`: 1x1 convs moved before
upsamplings, 2x bilinear resize and non-overlapping transposed convolution as hand-scheduled
kernels, a vectorizable sigmoid), the inference decompositions
and the "zero" pipeline (legalize, fold constants, fuse operators), optionally MetaSchedule
tuning and ``MetaScheduleApplyDatabase`` (see `edgeopt.backends.tvm_tune`; ``prepack`` adds
MetaSchedule's weight layout rewrite, folded into the constants), then ``tvm.compile`` and the
Relax virtual machine.

- **Target.** Detected from this CPU as a dict (``{"kind": "llvm", "mcpu": "znver5",
  "num-cores": 2}``: TVM 0.27 rejects string targets), or given in the options. A target for
  another architecture (e.g. ``"mtriple": "aarch64-linux-gnu"``) compiles and saves here; it
  runs only on the device (``run`` says so).
- **Untuned is slow on CPU.** Without tuning, TVM's kernels are the plain loops of operator
  legalization (no tiling, little vectorization): 15-25x slower than ONNX Runtime on the
  MediaPipe selfie model on this Zen 5. Tuning (``tune_trials`` / ``tune_seconds``) is what
  makes TVM useful here; its database persists per model and target, so the cost is paid once.
- **Artifacts.** ``save`` writes ``model.so`` (``export_library``; ``model.tar`` of object
  files for a cross target) and ``edgeopt-tvm.json`` (interface, target, options, the
  library's sha256), each renamed into place. ``load`` checks the sha256 before ``dlopen``
  (loading a damaged shared library can crash the process rather than raise), then runs the
  library in the VM without TVM's compiler.
- **Threads.** TVM's runtime thread pool is sized from ``TVM_NUM_THREADS`` when it starts and
  reconfigured through ``runtime.config_threadpool``; ``threads`` sets both.

TVM is imported only when a model is compiled or loaded, never to list backends.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import platform
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from edgeopt._fs import atomic_path, atomic_write_text, cache_dir, file_sha256
from edgeopt.artifact import ModelArtifact, TensorSpec
from edgeopt.backends.base import BackendOptions, check_feeds, parse_options
from edgeopt.backends.tvm_errors import map_tvm_error, quiet_tvm_log, tvm_errors, unsupported_op
from edgeopt.errors import (
    BackendError,
    BackendUnavailableError,
    ConfigError,
)
from edgeopt.rewrites import prepare_for_tvm

__all__ = [
    "TvmBackend",
    "TvmCompiledModel",
    "TvmOptions",
    "default_cache_dir",
    "host_target",
    "machine_of",
]

logger = logging.getLogger(__name__)

_META = "edgeopt-tvm.json"
_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


class TvmOptions(BackendOptions):
    """TVM compile and tuning options."""

    target: dict[str, Any] | None = Field(
        default=None,
        description='TVM target as a dict, e.g. {"kind": "llvm", "mcpu": "znver5", '
        '"num-cores": 2}; None: detected from this CPU.',
    )
    tune_trials: int = Field(
        default=0, ge=0, description="MetaSchedule trials in all; 0 (and no tune_seconds): untuned."
    )
    tune_seconds: float | None = Field(
        default=None, gt=0, description="Time budget for tuning; stops at the first check after."
    )
    trials_per_task: int | None = Field(
        default=None, ge=1, description="Most trials per kernel; None: the budget spread evenly."
    )
    retune: bool = Field(
        default=False,
        description="With a tuning budget: also tune further the kernels the database already "
        "has records for, starting from them (a second --tune continues the first); False: "
        "only kernels without a record are tuned.",
    )
    use_database: bool = Field(
        default=False,
        description="Apply the tuning database's records for this model and target without "
        "tuning (what tune_trials produced earlier); kernels it lacks stay untuned.",
    )
    rewrite: bool = Field(
        default=True,
        description="Run 1x1 convs before upsamplings, 2x bilinear resizes and non-overlapping "
        "transposed convolutions as hand-scheduled kernels, sigmoid through a vectorizable "
        "tanh (see edgeopt.backends.tvm_rewrite).",
    )
    layout: Literal["NCHW", "NHWC"] = Field(
        default="NCHW",
        description="Data layout of the convolutions (Relax ConvertLayout). Measured on "
        "MediaPipe selfie, 2-core Sapphire Rapids: untuned NHWC = NCHW (12.9 ms), but "
        "MetaSchedule measured 16 NHWC candidates in 5 min against 758 NCHW ones, so NCHW "
        "stays the default. Blocked NCHWc is not offered: this TVM's ConvertLayout cannot "
        "produce it for conv2d.",
    )
    prepack: bool = Field(
        default=False,
        description="With tuning: let schedules repack weights into blocked layouts at compile "
        "time (MetaSchedule's layout rewrite, folded into the constants).",
    )
    cache_dir: str | None = Field(
        default=None,
        description="Root of the tuning databases; None: $EDGEOPT_CACHE_DIR/tvm or the user cache.",
    )


def _tvm() -> Any:
    try:
        import tvm  # type: ignore[import-untyped]
    except ImportError as e:
        raise BackendUnavailableError("tvm", TvmBackend.install_hint) from e
    return tvm


def default_cache_dir() -> Path:
    """Where tuning databases live unless ``cache_dir`` says otherwise."""
    return cache_dir() / "tvm"


def host_target(threads: int | None = None) -> dict[str, Any]:
    """The dict-form LLVM target of this CPU (its LLVM name, e.g. ``znver5``, and core count)."""
    tvm = _tvm()
    cpu = str(tvm.target.codegen.llvm_get_system_cpu())
    target: dict[str, Any] = {"kind": "llvm", "num-cores": threads or os.cpu_count() or 1}
    if cpu and cpu != "generic":
        target["mcpu"] = cpu
    return target


def machine_of(triple: str) -> str:
    """The machine an LLVM triple is for (``aarch64-linux-gnu`` -> ``aarch64``); "" for ""."""
    head = triple.split("-")[0]
    return _ARCH.get(head, head)


def _arch_of(target: Mapping[str, Any]) -> str:
    triple = str(target.get("mtriple", ""))
    return machine_of(triple) if triple else _host_arch()


def _host_arch() -> str:
    return _ARCH.get(platform.machine().lower(), platform.machine().lower())


@contextlib.contextmanager
def _affinity_kept() -> Iterator[None]:
    """Run a block, then give the calling thread back the CPUs it had.

    Configuring TVM's thread pool binds the calling thread to a core (``TVM_BIND_THREADS``; with
    one thread, core 0) and never lets go. In a process that does more than run this model (the
    app, ``auto`` checking fidelity in-process, a parent that then starts benchmark workers,
    which inherit the mask) everything afterwards ran on one core: a 2-thread variant measured
    0.32x where it runs at 1x. Only the configuration binds (runs afterwards leave the mask as
    it is: checked), so only `_set_threads` needs this, not the per-inference path.
    """
    if not hasattr(os, "sched_getaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    try:
        yield
    finally:
        if os.sched_getaffinity(0) != before:
            os.sched_setaffinity(0, before)


def _set_threads(tvm: Any, threads: int | None) -> None:
    """Size TVM's thread pool before its first parallel kernel starts it.

    Without a count TVM sizes the pool from its guess of the physical cores, which on a 2-vCPU
    machine (two hyperthreads of one core, as the VM reports them) is one thread: MediaPipe
    selfie general, 10-minute-tuned, ran in 2.15 ms p50 that way and in 1.59 ms with
    ``TVM_NUM_THREADS=2`` (this session's Xeon; ORT default 1.96 ms). So the default is every
    usable CPU, as ORT does; an explicit ``TVM_NUM_THREADS`` in the environment wins.
    """
    if threads is None:
        if os.environ.get("TVM_NUM_THREADS"):
            return
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        threads = threads or os.cpu_count() or 1
    os.environ["TVM_NUM_THREADS"] = str(threads)
    config = tvm.get_global_func("runtime.config_threadpool", allow_missing=True)
    if config is not None:
        with _affinity_kept():  # configuring the pool binds the calling thread to a core
            config(-3, threads)  # kSpecifyThreadShareAllCore: threads float over all cores


def _spec_json(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "dtype": spec.dtype, "shape": list(spec.shape)}


def _spec_from_json(data: Mapping[str, Any]) -> TensorSpec:
    return TensorSpec(name=str(data["name"]), dtype=str(data["dtype"]), shape=tuple(data["shape"]))


class TvmCompiledModel:
    """A model compiled by TVM: a runtime library run by the Relax virtual machine.

    Attributes:
        target: The dict-form target it was compiled for.
        tuning: What tuning did while compiling (None when untuned or loaded).
    """

    def __init__(
        self,
        executable: Any,
        target: dict[str, Any],
        options: TvmOptions,
        inputs: tuple[TensorSpec, ...],
        outputs: tuple[TensorSpec, ...],
        source: str,
        tuning: Any = None,
    ) -> None:
        self._executable = executable
        self._source = source
        self.target = target
        self.options = options
        self.inputs = inputs
        self.outputs = outputs
        self.tuning = tuning
        self._vm: Any = None
        self._main: Any = None
        if _arch_of(target) == _host_arch():
            tvm = _tvm()
            _set_threads(tvm, options.threads)
            self._vm = tvm.relax.VirtualMachine(executable, tvm.cpu())
            self._main = self._vm["main"]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference.

        Raises:
            InputMismatchError: Feeds that do not match the model's inputs.
            BackendError: A model compiled for another architecture, or TVM failed.
        """
        check_feeds(self.inputs, feeds)
        if self._main is None:
            raise BackendError(
                f"tvm: {self._source} was compiled for {_arch_of(self.target)} and cannot run "
                f"on this {_host_arch()} machine; save() it and load it on the device"
            )
        tvm = _tvm()
        args = [tvm.runtime.tensor(np.ascontiguousarray(feeds[s.name])) for s in self.inputs]
        with tvm_errors(f"tvm failed running {self._source}"):
            out = self._main(*args)
        values = [out] if hasattr(out, "numpy") else list(out)
        return {o.name: v.numpy() for o, v in zip(self.outputs, values, strict=True)}

    def profile(
        self, feeds: Mapping[str, np.ndarray], runs: int = 50
    ) -> dict[str, tuple[int, float]]:
        """Where the time goes, per kernel: (calls per inference, ms per inference), largest first.

        Every call the Relax VM makes (TVM's fused kernels such as
        ``fused_conv2d1_add_relu``, edgeopt's hand-scheduled ones, and the VM's own builtins
        such as ``vm.builtin.alloc_tensor``) is timed through the VM's instrument hook, on a
        VM of its own after 10 untimed runs. The hook is Python: each call's time includes
        about a microsecond of it (``vm.builtin.null_value``, which does nothing, shows how
        much), so the sum exceeds an unprofiled run by roughly that times the calls.

        Raises:
            InputMismatchError: Feeds that do not match the model's inputs.
            BackendError: A model compiled for another architecture, or TVM failed.
        """
        import time

        self.run(feeds)  # checks the feeds and the architecture
        tvm = _tvm()
        totals: dict[str, float] = {}
        calls: dict[str, int] = {}
        started = [0.0]

        def hook(func: Any, name: str, before: bool, ret: Any, *args: Any) -> int:
            if before:
                started[0] = time.perf_counter()
            else:
                totals[name] = totals.get(name, 0.0) + time.perf_counter() - started[0]
                calls[name] = calls.get(name, 0) + 1
            return 0  # VMInstrumentReturnKind.NO_OP: run the call as usual

        args = [tvm.runtime.tensor(np.ascontiguousarray(feeds[s.name])) for s in self.inputs]
        with tvm_errors(f"tvm failed profiling {self._source}"):
            vm = tvm.relax.VirtualMachine(self._executable, tvm.cpu())
            main = vm["main"]
            for _ in range(10):
                main(*args)
            vm.set_instrument(hook)
            main = vm["main"]
            for _ in range(runs):
                main(*args)
        ranked = sorted(totals, key=lambda k: -totals[k])
        return {k: (calls[k] // runs, totals[k] * 1e3 / runs) for k in ranked}

    def save(self, directory: Path) -> Path:
        """Write the library (``model.so``, or ``model.tar`` for a cross target) and metadata."""
        directory = Path(directory)
        name = "model.so" if _arch_of(self.target) == _host_arch() else "model.tar"
        what = f"tvm could not export the library of {self._source}"
        with tvm_errors(what), atomic_path(directory / name) as tmp, quiet_tvm_log():
            self._executable.export_library(str(tmp))
        meta = {
            "backend": "tvm",
            "tvm": str(_tvm().__version__),
            "library": name,
            "sha256": file_sha256(directory / name),
            "target": self.target,
            "options": self.options.model_dump(mode="json"),
            "inputs": [_spec_json(s) for s in self.inputs],
            "outputs": [_spec_json(s) for s in self.outputs],
            "source": self._source,
        }
        atomic_write_text(directory / _META, json.dumps(meta, indent=2))
        return directory


class TvmBackend:
    """The Apache TVM (Relax + MetaSchedule) CPU backend."""

    name: ClassVar[str] = "tvm"
    options_type: ClassVar[type[BackendOptions]] = TvmOptions
    install_hint: ClassVar[str] = "pip install 'edgeopt[tvm]' (Apache TVM 0.27 and MetaSchedule)"

    def is_available(self) -> bool:
        """True when the tvm package is installed (checked without importing it)."""
        return importlib.util.find_spec("tvm") is not None

    def resolve_target(self, options: TvmOptions) -> dict[str, Any]:
        """The dict-form target ``options`` ask for (detected from this CPU when not given)."""
        if options.target is None:
            return host_target(options.threads)
        if "kind" not in options.target:
            raise ConfigError(
                f"bad options for backend 'tvm': target {options.target!r} has no 'kind'; "
                'give e.g. {"kind": "llvm", "mcpu": "znver5"}'
            )
        return dict(options.target)

    def lower(self, model: ModelArtifact, options: TvmOptions, target: Any) -> Any:
        """The Relax module that `compile` tunes and builds for ``target``.

        ONNX import (weights as constants), the CPU rewrites (``options.rewrite``), inference
        decompositions and TVM's zero pipeline (legalize, fold constants, fuse), and with
        ``options.prepack`` the weights marked layout-free. Tuning elsewhere (over RPC, see
        `edgeopt.bench.remote_tune`) starts from this module, so its workloads match.

        Raises:
            UnsupportedOpError: An operator TVM's ONNX frontend cannot convert.
            BackendError: TVM failed to import or lower the model.
        """
        tvm = _tvm()
        from tvm import relax
        from tvm.relax.frontend.onnx import from_onnx  # type: ignore[import-untyped]

        proto, _ = prepare_for_tvm(model.proto(), swap_convs=options.rewrite)
        try:
            mod = from_onnx(proto, keep_params_in_input=False)
        except Exception as e:
            unsupported = unsupported_op(e, model)
            if unsupported is not None:
                raise unsupported from e
            raise BackendError(f"tvm could not import {model.path}: {e}") from e
        try:
            if options.rewrite:
                from edgeopt.backends.tvm_rewrite import rewrite_for_cpu

                mod, count = rewrite_for_cpu(mod)
                logger.debug("tvm: rewrote %d operators of %s for CPU", count, model.path)
            if options.layout != "NCHW":
                desired = {"relax.nn.conv2d": [options.layout, "OHWI"]}
                mod = relax.transform.ConvertLayout(desired)(mod)
            with target:
                mod = tvm.transform.Sequential(
                    [
                        relax.transform.DecomposeOpsForInference(),
                        relax.transform.CanonicalizeBindings(),
                        relax.pipeline.zero_pipeline(),
                    ]
                )(mod)
            if options.prepack:
                # Marks weights (constants here) layout-free, so tuned schedules may ask for
                # them in a blocked layout; compile folds the rewrite into the constants.
                mod = relax.transform.AttachAttrLayoutFreeBuffers()(mod)
        except Exception as e:  # TVMError and friends, raised through the FFI
            raise map_tvm_error(e, f"tvm could not lower {model.path}") from e
        return mod

    def compile(
        self, model: ModelArtifact, options: BackendOptions | Mapping[str, Any] | None = None
    ) -> TvmCompiledModel:
        """Import ``model`` into Relax, tune it if asked, and build it for the target.

        Raises:
            ConfigError: Bad options or an unknown target.
            UnsupportedOpError: An operator TVM's ONNX frontend cannot convert.
            BackendError: TVM failed to compile or tune.
        """
        opts = parse_options(TvmOptions, options, self.name)
        tvm = _tvm()
        from tvm import relax

        target_dict = self.resolve_target(opts)
        with tvm_errors(f"bad options for backend 'tvm': target {target_dict!r}", ConfigError):
            target = tvm.target.Target(target_dict)
        mod = self.lower(model, opts, target)
        tuning = None
        try:
            tune = opts.tune_trials > 0 or opts.tune_seconds is not None
            if tune or opts.use_database:
                from edgeopt.backends import tvm_tune

                root = Path(opts.cache_dir) if opts.cache_dir else default_cache_dir()
                db = tvm_tune.database_dir(root, model.sha256(), target_dict)
            if tune:
                tuning = tvm_tune.tune(
                    mod,
                    target,
                    db,
                    trials=opts.tune_trials or 1_000_000,
                    seconds=opts.tune_seconds,
                    trials_per_task=opts.trials_per_task,
                    threads=opts.threads or os.cpu_count() or 1,
                    again=opts.retune,
                )
                logger.info("tvm tuning of %s: %s", model.path, tuning)
            if tune or opts.use_database:
                if not db.is_dir():
                    logger.warning("no tuning database for %s at %s: untuned", model.path, db)
                mod = tvm_tune.apply_database(mod, target, db)
                if opts.prepack:
                    with target:
                        mod = tvm.transform.Sequential(
                            [
                                relax.transform.SplitLayoutRewritePreproc(),
                                relax.transform.FoldConstant(),
                            ]
                        )(mod)
            executable = tvm.compile(mod, target=target)
        except Exception as e:  # TVMError and friends, raised through the FFI
            raise map_tvm_error(e, f"tvm could not compile {model.path} for {target_dict}") from e
        return TvmCompiledModel(
            executable, target_dict, opts, model.inputs, model.outputs, str(model.path), tuning
        )

    def load(self, directory: Path) -> TvmCompiledModel:
        """Load a library saved by `TvmCompiledModel.save`, without TVM's compiler.

        Raises:
            BackendError: No saved TVM model there, or a library whose bytes changed since it
                was saved (damaged or half-copied): compile the model again.
        """
        directory = Path(directory)
        try:
            meta = json.loads((directory / _META).read_text())
            options = TvmOptions.model_validate(meta["options"])
            inputs = tuple(_spec_from_json(s) for s in meta["inputs"])
            outputs = tuple(_spec_from_json(s) for s in meta["outputs"])
            library = directory / str(meta["library"])
            target = dict(meta["target"])
            expected = str(meta["sha256"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BackendError(
                f"{directory}: not a saved tvm model ({_META} missing or corrupt): {e}"
            ) from e
        if library.resolve().parent != directory.resolve():
            raise BackendError(
                f"{directory}: {_META} names a library outside its folder ({meta['library']!r}); "
                "refusing to load it: an artifact's files must sit in its own folder"
            )
        if library.name not in ("model.so", "model.tar") or not library.is_file():
            raise BackendError(f"{directory}: the library {library.name} is missing; compile again")
        if file_sha256(library) != expected:
            raise BackendError(
                f"{library}: the library is damaged (its sha256 differs from the one saved in "
                f"{_META}); compile the model again"
            )
        if _arch_of(target) != _host_arch():
            raise BackendError(
                f"{library} was compiled for {_arch_of(target)}; load it on that device, "
                f"not on this {_host_arch()} machine"
            )
        tvm = _tvm()
        with (
            tvm_errors(f"{library}: tvm cannot load this library (compile again)"),
            quiet_tvm_log(),
        ):
            lib = tvm.runtime.load_module(str(library))
        return TvmCompiledModel(lib, target, options, inputs, outputs, str(meta.get("source")))
