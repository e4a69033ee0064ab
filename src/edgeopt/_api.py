"""The library's front door: load, compile, benchmark. The CLI calls only these."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeopt.artifact import ModelArtifact
from edgeopt.backends.base import BackendOptions, CompiledModel
from edgeopt.backends.saved import load_saved, save_compiled
from edgeopt.bench.harness import BenchSettings, Progress, Variant, compare
from edgeopt.bench.result import Comparison
from edgeopt.errors import BackendUnavailableError
from edgeopt.loader import load
from edgeopt.registry import get_backend

__all__ = ["benchmark", "compile", "compile_to", "load", "load_compiled"]


def compile(
    model: ModelArtifact | str | os.PathLike[str],
    backend: str = "onnxruntime",
    options: BackendOptions | Mapping[str, Any] | None = None,
) -> CompiledModel:
    """Compile a model for a backend; the result runs feeds and saves its artifact.

    Args:
        model: A loaded artifact or a model path.
        backend: A registered backend name (see ``edgeopt list``).
        options: The backend's options (validated against its options model).

    Raises:
        PluginError: Unknown backend. BackendUnavailableError: not installed here.
        ConfigError: Bad options. BackendError / UnsupportedOpError: compilation failed.
    """
    artifact = model if isinstance(model, ModelArtifact) else load(model)
    impl = get_backend(backend)
    if not impl.is_available():
        raise BackendUnavailableError(impl.name, impl.install_hint)
    compiled: CompiledModel = impl.compile(artifact, options)
    return compiled


def compile_to(
    model: ModelArtifact | str | os.PathLike[str],
    backend: str,
    options: BackendOptions | Mapping[str, Any] | None,
    output: str | os.PathLike[str],
    interface: Mapping[str, Any] | None = None,
) -> Path:
    """Compile a model and save it as a self-describing artifact folder.

    Args:
        model: A loaded artifact, a model path or a zoo name.
        backend: A registered backend name.
        options: The backend's options (TVM: ``tune_seconds``, ``target`` ...).
        output: The folder to write (see `edgeopt.backends.saved`).
        interface: Interface overrides (a model card's fields) recorded with the artifact.

    Returns:
        The folder.

    Raises:
        As `compile`; WriteError: the folder cannot be written.
    """
    from edgeopt.interface import infer_interface

    artifact = model if isinstance(model, ModelArtifact) else load(model)
    compiled = compile(artifact, backend, options)
    iface = infer_interface(artifact, interface)
    fields = iface.model_dump(mode="json") if iface is not None else None
    return save_compiled(compiled, backend, artifact, output, fields)


def load_compiled(directory: str | os.PathLike[str]) -> CompiledModel:
    """Load an artifact folder written by `compile_to` / ``edgeopt compile``.

    Loading runs the artifact's code (a shared library, a compiled blob): load only artifacts
    you made or trust; each file is checked against the sha256 recorded when it was written.

    Raises:
        ModelLoadError: Not an artifact folder. BackendError: damaged, or for another machine
            or version. BackendUnavailableError: the backend's runtime is not installed.
    """
    return load_saved(directory)


def benchmark(
    model: ModelArtifact | str | os.PathLike[str],
    backend: str = "onnxruntime",
    options: Mapping[str, Any] | None = None,
    settings: BenchSettings | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Benchmark one model on one backend in a worker process.

    Returns:
        A comparison with one variant (its speed-up is 1 by definition).
    """
    path = str((model if isinstance(model, ModelArtifact) else load(model)).path)
    variant = Variant(name=backend, model=path, backend=backend, options=dict(options or {}))
    return compare([variant], settings, progress)
