"""What a model's outputs mean, and one fidelity metric per task (see `edgeopt.tasks.base`).

A task arrives as data (a zoo entry, a model card, a recipe) and becomes a typed configuration
through `parse_task`, which picks the class by its ``kind``. `METRIC_DIRECTIONS` says which
task metrics are errors (lower is better), and `default_bound` what a task is held to when the
user gives no bound.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from edgeopt.errors import ConfigError, describe_validation
from edgeopt.tasks.anchors import SsdAnchors
from edgeopt.tasks.base import Outputs, Task
from edgeopt.tasks.classification import ClassificationTask
from edgeopt.tasks.detection import Detections, DetectionTask
from edgeopt.tasks.generic import GenericTask
from edgeopt.tasks.landmarks import LandmarksTask
from edgeopt.tasks.recognition import RecognitionTask, ctc_greedy
from edgeopt.tasks.segmentation import SegmentationTask

__all__ = [
    "METRIC_DIRECTIONS",
    "ClassificationTask",
    "DetectionTask",
    "Detections",
    "GenericTask",
    "LandmarksTask",
    "Outputs",
    "RecognitionTask",
    "SegmentationTask",
    "SsdAnchors",
    "Task",
    "TaskSpec",
    "ctc_greedy",
    "default_bound",
    "parse_task",
]

TaskSpec = Annotated[
    GenericTask
    | ClassificationTask
    | RecognitionTask
    | LandmarksTask
    | DetectionTask
    | SegmentationTask,
    Field(discriminator="kind"),
]
"""Any task, told apart by its ``kind`` (use it as a field type in configurations)."""

_ADAPTER: TypeAdapter[TaskSpec] = TypeAdapter(TaskSpec)

METRIC_DIRECTIONS: dict[str, bool] = {
    "f1": False,
    "precision": False,
    "recall": False,
    "nme": True,
    "nme_max": True,
    "top1": False,
    "text": False,
    "cer": True,
    "snr": False,
}
"""Task metric -> whether lower is better (errors: nme, nme_max, cer)."""

_KINDS = "generic, classification, recognition, landmarks, detection, segmentation"


def parse_task(data: Mapping[str, Any]) -> Task:
    """A task from plain data (a card's or a zoo entry's ``task:`` mapping).

    Args:
        data: The task's fields, ``kind`` among them.

    Raises:
        ConfigError: Not a mapping, an unknown kind, or bad fields; one line listing every
            problem.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"task: expected a mapping with a kind ({_KINDS}), got {type(data).__name__}"
        )
    try:
        return _ADAPTER.validate_python(dict(data))
    except ValidationError as e:
        problems = describe_validation(e)
        if "discriminator" in problems:  # no kind at all: say which there are
            problems += f" (kinds: {_KINDS})"
        raise ConfigError(f"task: {problems}") from e


def default_bound(task: Task | None) -> str:
    """The bound a task is held to when the user gives none (``snr>=30`` without a task)."""
    return task.default_bound if task is not None else GenericTask.default_bound
