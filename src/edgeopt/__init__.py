"""edgeopt: make ML models run fast on edge CPUs, by post-training optimization.

Import a model, optimize it, compile it for a backend, and benchmark every variant side by
side. The public API is what ``__all__`` lists; everything else is private.
"""

from __future__ import annotations

from edgeopt._api import benchmark, compile, compile_to, load, load_compiled
from edgeopt._fs import cache_dir
from edgeopt.artifact import ModelArtifact, TensorSpec
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

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "BenchSettings",
    "BenchmarkError",
    "BenchmarkResult",
    "Comparison",
    "ConfigError",
    "EdgeoptError",
    "InputMismatchError",
    "ModelArtifact",
    "ModelFetchError",
    "ModelLoadError",
    "PipelineReport",
    "PluginError",
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
    "get_backend",
    "load",
    "load_compiled",
    "optimize",
    "pass_names",
]
