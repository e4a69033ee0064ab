"""The segmentation task: a person mask, compared by IoU through the model interface.

A mask output means nothing until the `ModelInterface` reads it — its layout, activation and
person channel turn the raw tensor into a probability map — so the task does not read it:
``bench.fidelity`` computes the IoU of the two models' masks (thresholded at 0.5) with
``edgeopt.metrics``, and this task only names the metric and its default bound::

    iou = |M_ref and M_cand| / |M_ref or M_cand|       (1.0 when both masks are empty)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

from pydantic import Field

from edgeopt.errors import ConfigError
from edgeopt.tasks.base import Outputs, Task

__all__ = ["SegmentationTask"]


class SegmentationTask(Task):
    """A person mask: IoU through the model interface (the caller computes it)."""

    kind: Literal["segmentation"] = Field(default="segmentation", description="The task's kind.")

    metric: ClassVar[str] = "iou"
    default_bound: ClassVar[str] = "iou>=0.98"

    def score(self, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> dict[str, float]:
        """Not computed here: the mask is read through the model interface.

        Raises:
            ConfigError: Always; compute the mask IoU with the model's `ModelInterface`
                (``bench.fidelity`` does).
        """
        raise ConfigError(
            "segmentation task: the mask is read through the model interface, not the task: "
            "compute the IoU from ModelInterface.person_probability (bench.fidelity does)"
        )

    def describe(self) -> str:
        """One line for reports."""
        return "segmentation: IoU of the person masks read through the model interface"
