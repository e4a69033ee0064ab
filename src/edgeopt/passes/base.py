"""The pass contract: a model in, a model out, and a report of what changed.

"Not applicable" is a value with a reason (``PassResult.skipped``), not an exception, in the
manner of onnxscript's rewriter returning ``check_result.fail("why")``: a pipeline logs it and
goes on. A pass declares what it needs (e.g. calibration data) in ``requires`` so the pipeline
can check before it runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel

from edgeopt.artifact import ModelArtifact
from edgeopt.interface import ModelInterface

__all__ = ["Pass", "PassContext", "PassResult"]


@dataclass(frozen=True)
class PassContext:
    """What a pass may use besides the model.

    Attributes:
        workdir: Where the pass writes its output model.
        calibration: Representative feeds (for static quantization, pruning reconstruction).
        options: The pass's own validated options.
        interface: The model's image interface: how a pass that measures its own fidelity
            (accuracy-aware quantization, pruning allocation) reads the output. None: the
            output is not a person mask, and output metrics apply.
    """

    workdir: Path
    calibration: tuple[Mapping[str, np.ndarray], ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    interface: ModelInterface | None = None


@dataclass(frozen=True)
class PassResult:
    """The outcome of one pass.

    Attributes:
        model: The output model (the input model when nothing changed).
        modified: Whether the model changed.
        report: Facts about what the pass did (ops before/after, sparsity, ...).
        skipped: Why the pass did not apply, or None when it ran.
    """

    model: ModelArtifact
    modified: bool
    report: Mapping[str, Any] = field(default_factory=dict)
    skipped: str | None = None

    @classmethod
    def not_applicable(cls, model: ModelArtifact, reason: str) -> PassResult:
        """A result saying the pass does not apply to ``model``, and why."""
        return cls(model=model, modified=False, report={}, skipped=reason)


@runtime_checkable
class Pass(Protocol):
    """A model-to-model transformation."""

    name: ClassVar[str]
    requires: ClassVar[Iterable[str]]
    options_type: ClassVar[type[BaseModel]]  # the options ``PassContext.options`` must satisfy

    def apply(self, model: ModelArtifact, ctx: PassContext) -> PassResult:
        """Transform ``model``; returns the result (or a not-applicable result)."""
        ...
