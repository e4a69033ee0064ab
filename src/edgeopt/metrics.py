"""Fidelity metrics on raw arrays: output errors for any tensor, mask metrics for masks.

Which metrics apply depends on what the output means, and this module never guesses it:

- For any output: max and mean absolute error, cosine similarity, and for classification-like
  outputs ([N, K] with K > 1) the top-1 agreement of the two models.
- For a person mask, only when the caller gives a function that turns a raw output into a
  probability map (`edgeopt.interface.ModelInterface.person_probability`): the IoU of the
  masks thresholded at 0.5 (mean and worst sample) and the boundary F-score (DAVIS style).
  Raw logits are never thresholded as if they were probabilities.

A frame where both masks are empty scores IoU 1.0 (the models agree: nobody there), and is
counted in ``empty_frames`` so a set of empty frames cannot pass for a good result unnoticed.
The metrics are a few lines of numpy each; no maintained library computes this exact set on
raw arrays without pulling in a training framework, so they are written here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Literal

import numpy as np

from edgeopt.errors import ConfigError

__all__ = [
    "LOWER_IS_BETTER",
    "FidelityMetrics",
    "boundary_f_score",
    "compare_outputs",
    "mask_iou",
    "parse_bound",
]

_NOT_METRICS = ("samples", "kind", "empty_frames", "task")
LOWER_IS_BETTER = frozenset({"max_abs", "mean_abs", "nme"})
"""Metrics where smaller is better; the others (IoU, cosine, F-score) are better when larger."""

MASK_METRICS = frozenset({"iou", "iou_min", "boundary_f"})
TASK_METRICS = {"f1": "detection", "nme": "landmarks", "text": "recognition"}
"""Metrics only a task's decoding gives, and the task that gives each."""

_BOUND = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=)\s*([0-9.eE+-]+)\s*$")


def parse_bound(text: str) -> tuple[str, float]:
    """A fidelity bound such as ``iou>=0.98`` or ``max_abs<=1e-3``: (metric, threshold).

    The one syntax every command uses (``optimize --bound``, ``auto --bound``).

    Raises:
        ConfigError: Not METRIC>=VALUE / METRIC<=VALUE, an unknown metric, or the comparison
            the wrong way round for the metric (errors are bounded from above).
    """
    m = _BOUND.match(text)
    if not m:
        raise ConfigError(f"bad fidelity bound {text!r}: write it like iou>=0.98 or max_abs<=1e-3")
    metric, op, value = m.group(1), m.group(2), float(m.group(3))
    known = [f.name for f in fields(FidelityMetrics) if f.name not in _NOT_METRICS]
    if metric not in known:
        raise ConfigError(f"bad fidelity bound {text!r}: unknown metric; known: {', '.join(known)}")
    if (op == "<=") != (metric in LOWER_IS_BETTER):
        want = "<=" if metric in LOWER_IS_BETTER else ">="
        raise ConfigError(f"bad fidelity bound {text!r}: bound {metric} as {metric}{want}VALUE")
    return metric, value


@dataclass(frozen=True)
class FidelityMetrics:
    """A variant's outputs compared with its reference over a set of inputs.

    Attributes:
        max_abs: Largest absolute difference over every output element.
        mean_abs: Mean absolute difference.
        cosine: Cosine similarity of the flattened outputs (mean over samples).
        iou: Mean IoU of the person masks (NaN: the output is not a mask).
        iou_min: The worst sample's IoU.
        boundary_f: Mean boundary F-score of the masks.
        samples: How many inputs were compared.
        kind: ``"mask"`` when mask metrics were computed through the model's interface,
            ``"tensor"`` when only output errors apply.
        top1: Top-1 agreement for classification-like outputs [N, K] (NaN otherwise), or
            the classification task's agreement.
        empty_frames: Frames where both masks are empty (scored IoU 1.0).
        task: The task whose metric was computed (``edgeopt.tasks``), ``generic`` for none.
        snr: Signal-to-noise ratio in dB of the worst output (every output compared).
        f1: Detection agreement F1 of the decoded boxes (NaN for other tasks).
        nme: Landmarks: mean point error over the image side (NaN for other tasks).
        text: Recognition: share of identically decoded sequences (NaN for other tasks).
    """

    max_abs: float
    mean_abs: float
    cosine: float
    iou: float
    iou_min: float
    boundary_f: float
    samples: int
    kind: Literal["mask", "tensor"] = "mask"
    top1: float = math.nan
    empty_frames: int = 0
    task: str = "generic"
    snr: float = math.nan
    f1: float = math.nan
    nme: float = math.nan
    text: float = math.nan

    def value(self, metric: str) -> float:
        """The value of one metric by name (``iou``, ``iou_min``, ``cosine``, ...).

        Raises:
            ConfigError: No such metric, or a mask metric for an output that is not a mask.
        """
        values = asdict(self)
        if metric not in values or metric in _NOT_METRICS:
            known = ", ".join(k for k in values if k not in _NOT_METRICS)
            raise ConfigError(f"unknown fidelity metric {metric!r}; known metrics: {known}")
        if metric in MASK_METRICS and self.kind != "mask":
            raise ConfigError(
                f"the fidelity metric {metric!r} needs a person-mask output, and this model's "
                "interface has none: give --output-activation / --person-channel (or --card), "
                "or bound an output metric instead (e.g. cosine>=0.999)"
            )
        if metric in TASK_METRICS and math.isnan(values[metric]):
            raise ConfigError(
                f"the fidelity metric {metric!r} is the {TASK_METRICS[metric]} task's, and this "
                f"model's task is {self.task}: give the task in a model card (--card), or bound "
                "a metric that applies (e.g. snr>=30)"
            )
        return float(values[metric])

    def meets(self, metric: str, threshold: float) -> bool:
        """Whether ``metric`` is at least (or, for errors, at most) ``threshold``."""
        v = self.value(metric)
        return v <= threshold if metric in LOWER_IS_BETTER else v >= threshold

    def to_dict(self) -> dict[str, float | int | str]:
        """The metrics as a JSON-ready dict (NaN for metrics that do not apply)."""
        return asdict(self)


def mask_iou(reference: np.ndarray, candidate: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of two probability maps thresholded at ``threshold``; 1.0 when both are empty."""
    a, b = reference > threshold, candidate > threshold
    union = int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum()) / union


def _shift_or(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 square, in numpy."""
    out = mask.copy()
    h, w = mask.shape
    p = np.pad(mask, radius)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= p[dy : dy + h, dx : dx + w]
    return out


def _boundary(mask: np.ndarray) -> np.ndarray:
    inner = ~_shift_or(~mask, 1)  # erosion by 3x3 = complement of the dilated complement
    return np.asarray(mask & ~inner)


def boundary_f_score(
    reference: np.ndarray, candidate: np.ndarray, threshold: float = 0.5, tolerance: int = 2
) -> float:
    """Boundary F-score of two 2-D probability maps (DAVIS style).

    Boundary pixels of each thresholded mask count as matched when the other mask has a
    boundary pixel within ``tolerance`` pixels (Chebyshev distance). 1.0 when neither has one.
    """
    a, b = _boundary(reference > threshold), _boundary(candidate > threshold)
    na, nb = int(a.sum()), int(b.sum())
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    precision = float((b & _shift_or(a, tolerance)).sum()) / nb
    recall = float((a & _shift_or(b, tolerance)).sum()) / na
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def compare_outputs(
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    to_mask: Callable[[np.ndarray], np.ndarray] | None = None,
    threshold: float = 0.5,
    tolerance: int = 2,
) -> FidelityMetrics:
    """Compare a variant's outputs with the reference's, sample by sample.

    Args:
        reference: One raw output array per input (the fp32 model's).
        candidate: The variant's outputs for the same inputs, same shapes.
        to_mask: Turns one raw output into an HxW person probability; None: the output is not
            a mask, and only output metrics are computed.
        threshold: Mask threshold for IoU and boundary F-score.
        tolerance: Boundary match tolerance in pixels.

    Raises:
        ConfigError: Different numbers of samples or different shapes.
    """
    if len(reference) != len(candidate) or not reference:
        raise ConfigError(
            f"cannot compare {len(candidate)} candidate outputs with {len(reference)} references"
        )
    max_abs, abs_sum, n_el = 0.0, 0.0, 0
    cosines: list[float] = []
    norms: list[tuple[float, float, float]] = []  # |ref|, |candidate|, ref . candidate
    ious: list[float] = []
    bfs: list[float] = []
    agree: list[float] = []
    empty = 0
    for ref, cand in zip(reference, candidate, strict=True):
        r = np.asarray(ref, dtype=np.float64)
        c = np.asarray(cand, dtype=np.float64)
        if r.shape != c.shape:
            raise ConfigError(f"output shapes differ: reference {r.shape}, candidate {c.shape}")
        diff = np.abs(r - c)
        max_abs = max(max_abs, float(diff.max(initial=0.0)))
        abs_sum += float(diff.sum())
        n_el += diff.size
        norms.append((float(np.linalg.norm(r)), float(np.linalg.norm(c)), float((r * c).sum())))
        if r.ndim == 2 and r.shape[1] > 1:
            agree.extend((r.argmax(axis=1) == c.argmax(axis=1)).astype(float))
        if to_mask is not None:
            rm, cm = to_mask(np.asarray(ref)), to_mask(np.asarray(cand))
            if not (rm > threshold).any() and not (cm > threshold).any():
                empty += 1
            ious.append(mask_iou(rm, cm, threshold))
            bfs.append(boundary_f_score(rm, cm, threshold, tolerance))
    # A sample whose outputs are both ~0 next to the others' (a mask of a frame without a
    # person: 1e-20 everywhere) has no direction; its cosine is rounding noise (~0), so it
    # counts as agreeing, as IoU counts two empty masks; ~0 against a real output is 0.
    tiny = 1e-6 * max(nr for nr, _, _ in norms)
    for nr, nc, dot in norms:
        if nr <= tiny or nc <= tiny:  # ~0 on one side only: no agreement at all
            cosines.append(1.0 if nr <= tiny and nc <= tiny else 0.0)
        else:
            cosines.append(dot / (nr * nc))
    nan = math.nan
    return FidelityMetrics(
        max_abs=max_abs,
        mean_abs=abs_sum / max(n_el, 1),
        cosine=float(np.mean(cosines)),
        iou=float(np.mean(ious)) if ious else nan,
        iou_min=float(np.min(ious)) if ious else nan,
        boundary_f=float(np.mean(bfs)) if bfs else nan,
        samples=len(reference),
        kind="mask" if to_mask is not None else "tensor",
        top1=float(np.mean(agree)) if agree else nan,
        empty_frames=empty,
    )
