"""The tasks package: parsing by kind, metric directions, default bounds, the public API."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import edgeopt.tasks as tasks
from edgeopt.errors import ConfigError
from edgeopt.tasks import (
    METRIC_DIRECTIONS,
    ClassificationTask,
    DetectionTask,
    GenericTask,
    LandmarksTask,
    RecognitionTask,
    SegmentationTask,
    default_bound,
    parse_task,
)

CASES: list[tuple[dict[str, Any], type]] = [
    ({"kind": "generic"}, GenericTask),
    ({"kind": "classification", "output": "p"}, ClassificationTask),
    ({"kind": "recognition", "output": "ctc", "blank": 3}, RecognitionTask),
    ({"kind": "landmarks", "output": "lm", "coordinate_scale": 256}, LandmarksTask),
    (
        {"kind": "detection", "decoder": "yolo", "boxes_output": "o", "input_size": [640, 640]},
        DetectionTask,
    ),
    ({"kind": "segmentation"}, SegmentationTask),
]


@pytest.mark.parametrize(("data", "cls"), CASES)
def test_parse_task_picks_the_class_by_kind(data: dict[str, Any], cls: type) -> None:
    task = parse_task(data)
    assert type(task) is cls
    assert parse_task(task.model_dump()) == task
    assert task.describe()
    metric, _, _ = task.default_bound.partition(">=" if ">=" in task.default_bound else "<=")
    assert metric == task.metric


def test_parse_task_errors_are_one_line_listing_every_problem() -> None:
    with pytest.raises(ConfigError, match="kinds: generic") as info:
        parse_task({"output": "p"})
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"coordinate_scale: Field required; .*extra"):
        parse_task({"kind": "landmarks", "output": "lm", "extra": 1})
    with pytest.raises(ConfigError, match="'nope'"):
        parse_task({"kind": "nope"})
    with pytest.raises(ConfigError, match="mapping"):
        parse_task(["generic"])  # type: ignore[arg-type]


def test_metric_directions_and_default_bounds() -> None:
    assert METRIC_DIRECTIONS == {
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
    assert default_bound(None) == "snr>=30"
    assert default_bound(parse_task({"kind": "landmarks", "output": "x", "coordinate_scale": 1}))
    assert default_bound(parse_task({"kind": "segmentation"})) == "iou>=0.98"
    assert default_bound(ClassificationTask(output="p")) == "top1>=0.99"


def test_segmentation_score_says_where_the_iou_is_computed() -> None:
    sample = {"mask": np.ones((1, 4, 4, 1), np.float32)}
    with pytest.raises(ConfigError, match="model interface"):
        SegmentationTask().score([sample], [sample])


def test_public_api_is_what_it_says() -> None:
    for name in tasks.__all__:
        assert hasattr(tasks, name), name
    assert sorted(tasks.__all__) == sorted(set(tasks.__all__))
