"""edgeopt: make ML models run fast on edge CPUs, by post-training optimization.

Import a model, optimize it, compile it for a backend, and benchmark every variant side by
side. The public API is what ``__all__`` lists; everything else is private. Each
command has its function: ``info`` `describe`, ``convert``/``models pull`` `load`, ``optimize``
`optimize`, ``compile`` `compile_to`, ``bench`` `benchmark`/`compare`, ``auto`` `search`,
``bgremove`` `load_segmenter` + `BackgroundRemover` (the frame API), ``models`` `zoo`. The
search, the app and the zoo are imported when first used.
"""

from __future__ import annotations

import importlib
from typing import Any as _Any

from edgeopt._api import benchmark, compile, compile_to, load, load_compiled
from edgeopt._fs import cache_dir
from edgeopt.artifact import ModelArtifact, TensorSpec
from edgeopt.artifact import model_summary as describe
from edgeopt.bench import BenchmarkResult, BenchSettings, Comparison, Variant, compare
from edgeopt.errors import (
    BackendError,
    BackendUnavailableError,
    BenchmarkError,
    ConfigError,
    EdgeoptError,
    InputMismatchError,
    ModelFetchError,
    ModelLoadError,
    PluginError,
    UnsafeModelError,
    UnsupportedOpError,
    WriteError,
)
from edgeopt.pipeline import PipelineReport, optimize
from edgeopt.registry import backend_names, get_backend, pass_names

__version__ = "0.1.0"

_LAZY = {
    "zoo": ("edgeopt.zoo", None),
    "search": ("edgeopt.auto", "search"),
    "AutoSettings": ("edgeopt.auto", "AutoSettings"),
    "AutoResult": ("edgeopt.auto", "AutoResult"),
    "load_segmenter": ("edgeopt.apps.background", "load_segmenter"),
    "Segmenter": ("edgeopt.apps.background", "Segmenter"),
    "SegmenterOptions": ("edgeopt.apps.background", "SegmenterOptions"),
    "BackgroundRemover": ("edgeopt.apps.background", "BackgroundRemover"),
    "EffectOptions": ("edgeopt.apps.background", "EffectOptions"),
}
"""Public names imported on first use: (module, attribute; None: the module itself)."""


def __getattr__(name: str) -> _Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'edgeopt' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = importlib.import_module(module)
    return value if attr is None else getattr(value, attr)


__all__ = [
    "AutoResult",
    "AutoSettings",
    "BackendError",
    "BackendUnavailableError",
    "BackgroundRemover",
    "BenchSettings",
    "BenchmarkError",
    "BenchmarkResult",
    "Comparison",
    "ConfigError",
    "EdgeoptError",
    "EffectOptions",
    "InputMismatchError",
    "ModelArtifact",
    "ModelFetchError",
    "ModelLoadError",
    "PipelineReport",
    "PluginError",
    "Segmenter",
    "SegmenterOptions",
    "TensorSpec",
    "UnsafeModelError",
    "UnsupportedOpError",
    "Variant",
    "WriteError",
    "__version__",
    "backend_names",
    "benchmark",
    "cache_dir",
    "compare",
    "compile",
    "compile_to",
    "describe",
    "get_backend",
    "load",
    "load_compiled",
    "load_segmenter",
    "optimize",
    "pass_names",
    "search",
    "zoo",
]
