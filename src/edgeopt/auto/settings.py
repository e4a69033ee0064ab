"""What ``edgeopt auto`` tries (recipes, bound, budget) and what it records per variant."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.bench.result import Comparison
from edgeopt.metrics import LOWER_IS_BETTER, parse_bound

__all__ = [
    "CANDIDATES",
    "PRUNE_RATIOS",
    "AutoResult",
    "AutoSettings",
    "Outcome",
    "parse_bound",
]

CANDIDATES: dict[str, list[dict[str, Any]]] = {
    "fp32": [],
    "simplified": [{"name": "simplify"}],
    "ort-layout": [{"name": "ort_layout"}],
    "fp16-weights": [{"name": "fp16"}],
    "int8-static": [{"name": "simplify"}, {"name": "quantize", "options": {"mode": "static"}}],
    "int8-nncf": [{"name": "simplify"}, {"name": "quantize_nncf"}],
    "pruned": [{"name": "prune_structured"}],
    "pruned+ort-layout": [{"name": "prune_structured"}, {"name": "ort_layout"}],
}
"""Candidate recipes: name -> passes (``fp32`` is the model as it is). The ``pruned`` ones use
the largest of `PRUNE_RATIOS` whose model meets the bound; a combination is its passes in order
(every backend, OpenVINO's reduced precisions and tuned TVM are tried on each)."""

PRUNE_RATIOS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)
"""Structured-pruning ratios tried in order; the search stops at the first that fails the bound."""


def meets(bound: str, fidelity: dict[str, Any]) -> tuple[bool, str]:
    """Whether ``fidelity`` meets ``bound``, and the status line that says so."""
    metric, threshold = parse_bound(bound)
    value = float(fidelity[metric]) if metric in fidelity else float("nan")
    ok = value <= threshold if metric in LOWER_IS_BETTER else value >= threshold
    return ok, "ok" if ok else f"fails {bound} ({metric} {value:.4f})"


class AutoSettings(BaseModel):
    """What the search tries and how long it may take."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bound: str | None = Field(
        default=None,
        description="Fidelity bound every variant must meet; None: the model's task's default "
        "(iou>=0.98 for a person mask, f1>=0.95 for a detector, snr>=30 for no task, ...).",
    )
    budget_s: float = Field(default=900.0, gt=0, description="Wall-clock budget of the search.")
    candidates: tuple[str, ...] = Field(
        default=tuple(CANDIDATES), description="Candidate recipes, by name (see CANDIDATES)."
    )
    backends: tuple[str, ...] | None = Field(
        default=None, description="Backends to try; None: every available one."
    )
    threads: tuple[int, ...] = Field(default=(1, 2), description="Thread counts to try.")
    backend_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Extra options per backend (e.g. TVM tuning budget)."
    )
    pass_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Extra options per pass in every candidate (e.g. prune_structured's round_to).",
    )
    measure_s: float = Field(
        default=20.0,
        gt=0,
        description="Confirmation time: the finalists measured interleaved with the baseline "
        "alone (a third of it, at least 2 s, screens every variant first).",
    )
    finalists: int = Field(
        default=3, ge=1, description="How many of the screened variants are confirmed."
    )
    evaluation_count: int = Field(default=12, ge=1, description="Held-out images for fidelity.")
    data: str = Field(
        default="auto", description="Calibration/evaluation images: auto, builtin, folder, video."
    )
    tvm_tune_share: float = Field(
        default=0.4,
        ge=0.0,
        le=0.9,
        description="Share of the budget given to tuning TVM for the first candidate model "
        "(0: untuned TVM only); a share shorter than MetaSchedule's first round tunes only the "
        "heaviest kernels. The tuning database is kept: a second search reuses it.",
    )
    reduced_precision: bool = Field(
        default=True,
        description="Also try OpenVINO at bf16/f16 where the CPU has them (kept only if they "
        "meet the bound on the evaluation data).",
    )
    interface: dict[str, Any] | None = Field(
        default=None, description="Model interface fields (a model card's), on top of the graph's."
    )
    card: dict[str, Any] | None = Field(
        default=None,
        description="Model card fields beyond the interface (task, values, audio, state), on "
        "top of the card stored in the model.",
    )
    shapes: dict[str, tuple[int, ...]] | None = Field(
        default=None, description="Sizes of inputs with dynamic dimensions, by input name."
    )

    @property
    def screen_s(self) -> float:
        """How long the screening of every variant runs."""
        return max(2.0, self.measure_s / 3)


@dataclass(frozen=True)
class Outcome:
    """One variant the search considered, and what became of it.

    Attributes:
        status: ``measured`` (confirmed against the baseline), ``screened out``, or why the
            variant was dropped (fails the bound, failed, over budget, skipped).
        screen_speedup: Median speed-up in the screening of every variant together.
        speedup: Median speed-up in the confirmation against the baseline alone.
    """

    name: str
    candidate: str
    backend: str
    options: dict[str, Any]
    model: str
    fidelity: dict[str, float | int | str] | None
    status: str
    speedup: float | None = None
    screen_speedup: float | None = None
    error: bool = False
    """The variant failed (its recipe, backend or worker): an error, not a verdict of the
    bound or the budget."""


@dataclass(frozen=True)
class AutoResult:
    """The search's outcome: the winner, everything tried, and the confirming comparison."""

    winner: Outcome
    tried: tuple[Outcome, ...]
    comparison: Comparison
    output: Path
    bound: str = "iou>=0.98"
    """The bound every variant was held to (the given one, or the task's default)."""
