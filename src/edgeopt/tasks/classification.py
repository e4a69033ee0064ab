"""The classification task: top-1 agreement of the reference's and the candidate's decisions.

A classifier's output holds scores over classes along one axis (``axis``, the last by
default); every other position of the output is a separate decision. An output of shape
``[N, C]`` with ``axis=-1`` holds N decisions per sample, ``[1, C]`` one, ``[N, C, H, W]``
with ``axis=1`` N·H·W (a per-pixel classifier). The decision is the argmax over the axis — the
same for probabilities, logits or log-probabilities, since softmax and log are monotonic — so
the task needs no activation. Over every sample::

    top1 = (decisions where argmax(reference) == argmax(candidate)) / decisions

Ties resolve to the first maximum in both models alike (``numpy.argmax``). The score also
reports ``decisions``, the count the share is of, so that 1.0 over 3 decisions is not read as
1.0 over 3000.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from edgeopt.errors import ConfigError
from edgeopt.tasks.base import Outputs, Task, check_samples, read_output, same_shape

__all__ = ["ClassificationTask"]


class ClassificationTask(Task):
    """Scores over classes: the share of argmax decisions the candidate agrees on."""

    kind: Literal["classification"] = Field(
        default="classification", description="The task's kind."
    )
    output: str = Field(description="The output holding the class scores.")
    axis: int = Field(default=-1, description="The axis of the classes in that output.")

    metric: ClassVar[str] = "top1"
    default_bound: ClassVar[str] = "top1>=0.99"

    def decide(self, output: np.ndarray) -> np.ndarray:
        """The decisions of one output: the argmax over ``axis`` (that axis removed).

        Raises:
            ConfigError: The output has no such axis, or the axis is empty.
        """
        if not -output.ndim <= self.axis < output.ndim or output.shape[self.axis] == 0:
            raise ConfigError(
                f"classification task: output {self.output!r} has shape {output.shape}, "
                f"with no classes on axis {self.axis}: set axis to the classes' axis"
            )
        return np.asarray(np.argmax(output, axis=self.axis))

    def score(self, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> dict[str, float]:
        """Top-1 agreement over every decision of every sample.

        Returns:
            ``{"top1": share agreeing, "decisions": how many decisions}``.

        Raises:
            ConfigError: The output missing, of different shapes, or without the axis.
        """
        check_samples(reference, candidate, self.kind)
        agree = total = 0
        for i, (ref_sample, cand_sample) in enumerate(zip(reference, candidate, strict=True)):
            ref = read_output(ref_sample, self.output, self.kind, i)
            cand = read_output(cand_sample, self.output, self.kind, i)
            same_shape(ref, cand, self.output, self.kind)
            ref_top, cand_top = self.decide(ref), self.decide(cand)
            agree += int(np.count_nonzero(ref_top == cand_top))
            total += int(ref_top.size)
        top1 = agree / total if total else 1.0
        return {"top1": float(top1), "decisions": float(total)}

    def describe(self) -> str:
        """One line for reports."""
        return f"classification: top-1 agreement of {self.output!r} (classes on axis {self.axis})"
