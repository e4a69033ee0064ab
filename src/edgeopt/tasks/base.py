"""What a model's outputs mean, and so how fidelity is measured: one task per kind of output.

A task is a small typed configuration (pydantic, ``extra="forbid"``) that a zoo entry or a
user's model card carries beside the `ModelInterface`. It knows how to decode one sample's raw
outputs (all of them, by name) into what the application uses — boxes, points, a class, a
string — and how to compare a candidate's decoded outputs with the reference's, as one number
per metric. The metric a task bounds by default is its `Task.metric`; `Task.default_bound` is
what ``auto`` and ``optimize`` use when the user gives no bound.

Tasks and their metrics (one per task, checked against hand computations in the tests):

=============== ======== ==================================================================
task            metric   meaning
=============== ======== ==================================================================
segmentation    iou      person-mask IoU through the interface (computed in bench.fidelity)
detection       f1       agreement F1 of decoded, NMS-ed boxes at box IoU >= match_iou
landmarks       nme      mean point error / the image side, in the output's own units
classification  top1     top-1 agreement
recognition     text     share of samples whose CTC-decoded sequence is identical
generic         snr      signal-to-noise ratio in dB, worst output (never cosine alone)
=============== ======== ==================================================================

Every task reads its outputs through `read_output` and checks the two sample lists with
`check_samples`, so a missing output, an unreadable one or a sample count that differs fails
the same way everywhere: a `ConfigError` naming the output, its shape and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from edgeopt.errors import ConfigError

__all__ = ["Outputs", "Task", "check_samples", "read_output", "same_shape"]

Outputs = Mapping[str, np.ndarray]
"""One sample's raw outputs, by output name."""


class Task(BaseModel):
    """The base of every task configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: ClassVar[str] = "snr"
    """The metric this task is bounded by."""
    default_bound: ClassVar[str] = "snr>=30"
    """The bound ``auto`` and ``optimize`` use when none is given."""

    def score(self, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> dict[str, float]:
        """Compare a candidate's outputs with the reference's over the same samples.

        Returns:
            ``{self.metric: value, ...}`` plus any details (e.g. ``precision``, ``recall``,
            ``boxes``), every value a float.

        Raises:
            ConfigError: Outputs missing or of a shape the task cannot read (message names
                the output and the shape).
        """
        raise NotImplementedError

    def describe(self) -> str:
        """One line for reports: the task, its metric and how the outputs are read."""
        raise NotImplementedError


def check_samples(reference: Sequence[Outputs], candidate: Sequence[Outputs], task: str) -> None:
    """Check that the reference and the candidate cover the same, non-empty set of samples.

    Args:
        reference: The reference model's outputs, one mapping per sample.
        candidate: The candidate model's outputs over the same samples.
        task: The task's kind, for the message.

    Raises:
        ConfigError: No samples, or the two lists differ in length.
    """
    if len(reference) != len(candidate):
        raise ConfigError(
            f"{task} task: the reference has {len(reference)} samples and the candidate "
            f"{len(candidate)}: run both models on the same samples"
        )
    if not reference:
        raise ConfigError(f"{task} task: no samples to compare: give at least one sample")


def read_output(sample: Outputs, name: str, task: str, index: int | None = None) -> np.ndarray:
    """One output of one sample as a numpy array (not copied when it already is one).

    Args:
        sample: The sample's outputs by name.
        name: The output to read.
        task: The task's kind, for the message.
        index: The sample's position, for the message.

    Raises:
        ConfigError: The output is missing, or cannot be read as a numeric array.
    """
    where = f" in sample {index}" if index is not None else ""
    if name not in sample:
        have = ", ".join(repr(k) for k in sample) or "none"
        raise ConfigError(
            f"{task} task: output {name!r} is missing{where} (outputs: {have}): "
            "name one of the model's outputs in the task"
        )
    try:
        array = np.asarray(sample[name])
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{task} task: output {name!r}{where} is not an array: {e}") from e
    if array.dtype.kind not in "biuf":
        raise ConfigError(
            f"{task} task: output {name!r}{where} has shape {array.shape} and dtype "
            f"{array.dtype}, not numbers: name a numeric output in the task"
        )
    return array


def same_shape(reference: np.ndarray, candidate: np.ndarray, name: str, task: str) -> None:
    """Check that an output has the same shape in the reference and the candidate.

    Raises:
        ConfigError: The shapes differ (message names the output and both shapes).
    """
    if reference.shape != candidate.shape:
        raise ConfigError(
            f"{task} task: output {name!r} has shape {reference.shape} in the reference and "
            f"{candidate.shape} in the candidate: compare models with the same outputs"
        )
