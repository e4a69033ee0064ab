"""Plugin tables: backends and passes by name, imported only when asked for.

Built-ins live in literal ``name -> "module:Class"`` tables (Olive's ``olive_config.json``
idea), so listing names, or running ONNX Runtime, never imports TVM or OpenVINO. Third-party
plugins register through the entry-point groups ``edgeopt.backends`` and ``edgeopt.passes``.
``get_backend`` and ``get_pass`` return the ``Backend`` and ``Pass`` protocols (their modules,
``backends/base.py`` and ``passes/base.py``, sit in this layer, below the plugins) and check
that what a plugin registered implements them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

import numpy as np

from edgeopt.artifact import ModelArtifact, load_onnx
from edgeopt.backends.base import Backend
from edgeopt.errors import BackendUnavailableError, ConfigError, PluginError
from edgeopt.passes.base import Pass

__all__ = [
    "BACKENDS",
    "PASSES",
    "backend_names",
    "canonical_name",
    "get_backend",
    "get_pass",
    "pass_names",
    "run_outputs",
    "run_samples",
]

BACKENDS: dict[str, str] = {
    "onnxruntime": "edgeopt.backends.onnxruntime:OnnxRuntimeBackend",
    "litert": "edgeopt.backends.litert:LiteRtBackend",
    "openvino": "edgeopt.backends.openvino:OpenVinoBackend",
    "tvm": "edgeopt.backends.tvm:TvmBackend",
}
"""Built-in backends: name -> "module:Class"."""

PASSES: dict[str, str] = {
    "simplify": "edgeopt.passes.simplify:SimplifyPass",
    "quantize": "edgeopt.passes.quantize:QuantizePass",
    "quantize_nncf": "edgeopt.passes.quantize_nncf:QuantizeNncfPass",
    "fp16": "edgeopt.passes.fp16:Fp16Pass",
    "prune_unstructured": "edgeopt.passes.prune_unstructured:UnstructuredPrunePass",
    "prune_structured": "edgeopt.passes.prune_structured:StructuredPrunePass",
    "ort_layout": "edgeopt.passes.ort_layout:OrtLayoutPass",
}
"""Built-in passes: name -> "module:Class"."""

_ALIASES = {"ort": "onnxruntime", "prune": "prune_unstructured"}
"""Other names accepted for a plugin (older or shorter ones)."""


def canonical_name(name: str) -> str:
    """The registered name ``name`` stands for (``ort`` -> ``onnxruntime``)."""
    return _ALIASES.get(name, name)


def _table(builtin: dict[str, str], group: str) -> dict[str, str]:
    table = dict(builtin)
    for ep in entry_points(group=group):
        table.setdefault(ep.name, ep.value)
    return table


def _load(kind: str, name: str, table: dict[str, str]) -> Any:
    name = canonical_name(name)
    if name not in table:
        known = ", ".join(sorted(table)) or "none"
        raise PluginError(f"unknown {kind} {name!r}; known {kind}s: {known}")
    module_name, _, attr = table[name].partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as e:
        raise PluginError(f"{kind} {name!r} ({table[name]}) failed to import: {e}") from e


def backend_names() -> list[str]:
    """Names of every registered backend, built-in and plugin."""
    return sorted(_table(BACKENDS, "edgeopt.backends"))


def pass_names() -> list[str]:
    """Names of every registered pass, built-in and plugin."""
    return sorted(_table(PASSES, "edgeopt.passes"))


def _instance(kind: str, name: str, table: dict[str, str], protocol: type) -> Any:
    impl = _load(kind, name, table)()
    if not isinstance(impl, protocol):
        raise PluginError(
            f"{kind} {name!r} ({table.get(canonical_name(name))}) does not implement the "
            f"{protocol.__name__} protocol (see edgeopt.{kind}s.base): fix or remove the plugin"
        )
    return impl


def get_backend(name: str) -> Backend:
    """An instance of the backend registered as ``name`` (``ort`` is an alias of onnxruntime).

    Raises:
        PluginError: No such backend, its module fails to import, or it is not a Backend.
    """
    backend: Backend = _instance("backend", name, _table(BACKENDS, "edgeopt.backends"), Backend)
    return backend


def get_pass(name: str) -> Pass:
    """An instance of the pass registered as ``name``.

    Raises:
        PluginError: No such pass, its module fails to import, or it is not a Pass.
    """
    impl: Pass = _instance("pass", name, _table(PASSES, "edgeopt.passes"), Pass)
    return impl


def run_samples(
    model: ModelArtifact | str | os.PathLike[str],
    feeds: Sequence[Mapping[str, np.ndarray]],
    backend: str = "onnxruntime",
    options: Mapping[str, Any] | None = None,
    state: Mapping[str, str] | None = None,
) -> list[dict[str, np.ndarray]]:
    """Run an ONNX model on every feed with a backend by name; every output per feed.

    The one way passes, fidelity and the pipeline run a model to compare outputs (it sits
    here, below them all, so none of them imports another to do it).

    Args:
        model: The model (artifact or ``.onnx`` path).
        feeds: Inputs, one mapping per sample, in order.
        backend: Registered backend name.
        options: The backend's options.
        state: Recurrent inputs (input name -> output name): from the second sample on, each
            such input is fed the model's own output of the previous sample, so a model with
            state (an RNN, Silero VAD) runs the sequence as it does in use, and a candidate
            carries its own state, errors included.

    Raises:
        PluginError / BackendUnavailableError: No such backend here.
        BackendError: It failed to compile or run.
        ConfigError: A state mapping that names an input or output the model lacks.
    """
    artifact = model if isinstance(model, ModelArtifact) else load_onnx(model)
    impl = get_backend(backend)
    if not impl.is_available():
        raise BackendUnavailableError(impl.name, impl.install_hint)
    compiled = impl.compile(artifact, options)
    state = dict(state or {})
    ins = {s.name for s in compiled.inputs}
    outs = {s.name for s in compiled.outputs}
    bad = sorted(f"{i}<-{o}" for i, o in state.items() if i not in ins or o not in outs)
    if bad:
        raise ConfigError(
            f"{artifact.path}: state {bad} names inputs/outputs the model lacks (inputs "
            f"{sorted(ins)}, outputs {sorted(outs)}); fix the card's state mapping"
        )
    results: list[dict[str, np.ndarray]] = []
    for f in feeds:
        if results and state:
            f = {**f, **{i: results[-1][o] for i, o in state.items()}}
        results.append(compiled.run(f))
    return results


def run_outputs(
    model: ModelArtifact | str | os.PathLike[str],
    feeds: Sequence[Mapping[str, np.ndarray]],
    backend: str = "onnxruntime",
    options: Mapping[str, Any] | None = None,
    output: str | None = None,
) -> list[np.ndarray]:
    """`run_samples` (without state), one output per feed: ``output``, or the first."""
    artifact = model if isinstance(model, ModelArtifact) else load_onnx(model)
    samples = run_samples(artifact, feeds, backend, options)
    name = output or artifact.outputs[0].name
    return [s[name] for s in samples]
