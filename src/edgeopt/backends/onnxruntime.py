"""ONNX Runtime backend: the baseline every other variant is measured against.

Options map one to one onto ``onnxruntime.SessionOptions``: intra/inter-op threads, graph
optimization level, execution providers, thread spinning. ``save`` writes the model ORT
optimized for this machine (``optimized_model_filepath``) plus the options, so ``load`` in a
new process skips graph optimization.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from edgeopt._fs import atomic_write_text
from edgeopt.artifact import ModelArtifact, TensorSpec, load_onnx
from edgeopt.backends.base import BackendOptions, check_feeds, parse_options
from edgeopt.errors import BackendError, BackendUnavailableError, UnsupportedOpError

__all__ = [
    "OnnxRuntimeBackend",
    "OrtCompiledModel",
    "OrtOptions",
    "profile_ops",
]

_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
_NO_KERNEL = re.compile(
    r"Could not find an implementation for (\w+)\(\d+\) node with name '([^']*)'"
)
_NO_SCHEMA = re.compile(r"Fatal error: ([\w.]*:?\w+)\(-?\d+\) is not a registered function/op")
_META = "edgeopt-ort.json"


class OrtOptions(BackendOptions):
    """ONNX Runtime session options."""

    inter_op_threads: int | None = Field(
        default=None, ge=1, description="Threads across independent nodes (parallel mode only)."
    )
    optimization: Literal["disable", "basic", "extended", "all"] = Field(
        default="all", description="Graph optimization level (ORT_DISABLE_ALL ... ORT_ENABLE_ALL)."
    )
    providers: tuple[str, ...] = Field(
        default=("CPUExecutionProvider",), description="Execution providers, in priority order."
    )
    spinning: bool = Field(
        default=True, description="Let intra-op threads spin between runs (lower latency)."
    )
    spin_stop: bool = Field(
        default=False,
        description="Stop the threads' spinning the moment each run returns "
        "(session.force_spinning_stop): the speed of spinning during a run, the CPUs left to "
        "the application between runs.",
    )


def _ort() -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise BackendUnavailableError("onnxruntime", OnnxRuntimeBackend.install_hint) from e
    return onnxruntime


def _session_options(ort: Any, options: OrtOptions) -> Any:
    so = ort.SessionOptions()
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[options.optimization])
    if options.threads is not None:
        so.intra_op_num_threads = options.threads
    if options.inter_op_threads is not None:
        so.inter_op_num_threads = options.inter_op_threads
        so.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.spinning else "0")
    if options.spin_stop:
        so.add_session_config_entry("session.force_spinning_stop", "1")
    so.log_severity_level = 3
    return so


def _session(ort: Any, path: Path, options: OrtOptions, save_to: Path | None = None) -> Any:
    available = ort.get_available_providers()
    unknown = [p for p in options.providers if p not in available]
    if unknown:
        raise BackendError(
            f"onnxruntime: execution provider(s) {unknown} are not in this build; "
            f"available here: {available}"
        )
    so = _session_options(ort, options)
    if save_to is not None:
        so.optimized_model_filepath = str(save_to)
    try:
        return ort.InferenceSession(str(path), sess_options=so, providers=list(options.providers))
    except Exception as e:  # ORT raises its own untyped exception classes
        match = _NO_KERNEL.search(str(e))
        if match:
            raise UnsupportedOpError(
                match.group(1),
                match.group(2) or "?",
                str(path),
                hint="ONNX Runtime has no kernel for it at this opset/type; "
                "change the op or its input types",
            ) from e
        match = _NO_SCHEMA.search(str(e))
        if match:
            raise UnsupportedOpError(
                match.group(1),
                "?",
                str(path),
                hint="ONNX Runtime knows no such operator; register a custom-op library "
                "or convert the model without it",
            ) from e
        raise BackendError(f"onnxruntime could not load {path}: {e}") from e


class OrtCompiledModel:
    """An ONNX Runtime inference session with checked inputs."""

    def __init__(
        self,
        session: Any,
        model_path: Path,
        options: OrtOptions,
        inputs: tuple[TensorSpec, ...],
        outputs: tuple[TensorSpec, ...],
    ) -> None:
        self._session = session
        self._model_path = model_path
        self.options = options
        self.inputs = inputs
        self.outputs = outputs
        self._output_names = [o.name for o in outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference.

        Raises:
            InputMismatchError: Feeds that do not match the model's inputs.
            BackendError: ORT failed while running.
        """
        check_feeds(self.inputs, feeds)
        try:
            values = self._session.run(self._output_names, dict(feeds))
        except Exception as e:
            raise BackendError(f"onnxruntime failed running {self._model_path}: {e}") from e
        return dict(zip(self._output_names, values, strict=True))

    def save(self, directory: Path) -> Path:
        """Write ORT's optimized model (``model.onnx``) and the options into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        ort = _ort()
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            tmp_model = Path(tmp) / "model.onnx"
            _session(ort, self._model_path, self.options, save_to=tmp_model)
            tmp_model.replace(directory / "model.onnx")
        meta = {"backend": "onnxruntime", "options": self.options.model_dump(mode="json")}
        atomic_write_text(directory / _META, json.dumps(meta, indent=2))
        return directory


class OnnxRuntimeBackend:
    """The ONNX Runtime CPU backend (the project's baseline)."""

    name: ClassVar[str] = "onnxruntime"
    options_type: ClassVar[type[BackendOptions]] = OrtOptions
    install_hint: ClassVar[str] = "pip install onnxruntime"

    def is_available(self) -> bool:
        """True when onnxruntime imports."""
        try:
            _ort()
        except BackendUnavailableError:
            return False
        return True

    def compile(
        self, model: ModelArtifact, options: BackendOptions | Mapping[str, Any] | None = None
    ) -> OrtCompiledModel:
        """Create an inference session for ``model``.

        Raises:
            ConfigError: Bad options.
            UnsupportedOpError: ORT has no kernel for one of the model's ops.
            BackendError: ORT refused the model.
        """
        opts = parse_options(OrtOptions, options, self.name)
        session = _session(_ort(), model.path, opts)
        return OrtCompiledModel(session, model.path, opts, model.inputs, model.outputs)

    def load(self, directory: Path) -> OrtCompiledModel:
        """Load a model saved by `OrtCompiledModel.save`.

        Raises:
            ModelLoadError: The directory holds no saved ORT model, or a corrupt one.
        """
        directory = Path(directory)
        try:
            meta = json.loads((directory / _META).read_text())
            options = OrtOptions.model_validate(meta["options"])
        except (OSError, ValueError, KeyError) as e:
            raise BackendError(
                f"{directory}: not a saved onnxruntime model ({_META} missing or corrupt): {e}"
            ) from e
        artifact = load_onnx(directory / "model.onnx")
        # The saved model is already optimized; re-optimizing it would only cost start-up time.
        run_options = options.model_copy(update={"optimization": "disable"})
        session = _session(_ort(), artifact.path, run_options)
        return OrtCompiledModel(session, artifact.path, options, artifact.inputs, artifact.outputs)


def profile_ops(
    model: ModelArtifact,
    feeds: Mapping[str, np.ndarray],
    runs: int = 50,
    options: OrtOptions | Mapping[str, Any] | None = None,
) -> dict[str, tuple[int, float]]:
    """Where ONNX Runtime's time goes: per operator type, (kernels, ms per inference).

    From ORT's own profiler (``enable_profiling``, ``*_kernel_time`` events), after ORT's graph
    optimizations, so the op types are the kernels that run (``FusedConv``, ``ReorderInput``
    ...), which is what a rewrite or another backend would have to beat.

    Raises:
        BackendError: ORT cannot load or run the model.
    """
    import tempfile

    ort = _ort()
    opts = (
        OrtOptions.model_validate(dict(options or {}))
        if not isinstance(options, OrtOptions)
        else options
    )
    with tempfile.TemporaryDirectory(prefix="edgeopt-profile-") as tmp:
        so = ort.SessionOptions()
        so.enable_profiling = True
        so.log_severity_level = 3
        so.profile_file_prefix = str(Path(tmp) / "prof")
        if opts.threads:
            so.intra_op_num_threads = opts.threads
        try:
            session = ort.InferenceSession(str(model.path), so, providers=["CPUExecutionProvider"])
            for _ in range(runs):
                session.run(None, dict(feeds))
            events = json.loads(Path(session.end_profiling()).read_text())
        except Exception as e:
            raise BackendError(f"onnxruntime could not profile {model.path}: {e}") from e
    kernels: dict[str, set[str]] = {}
    total: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and str(event.get("name", "")).endswith("_kernel_time"):
            op = str(event["args"]["op_name"])
            kernels.setdefault(op, set()).add(str(event["name"]))
            total[op] = total.get(op, 0.0) + float(event["dur"]) / runs / 1000.0
    ranked = sorted(total, key=lambda k: -total[k])
    return {op: (len(kernels[op]), total[op]) for op in ranked}
