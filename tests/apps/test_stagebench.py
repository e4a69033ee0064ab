"""The stage benchmark: a small run measures every stage of every variant, with mask IoU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeopt.apps.background.stagebench import (
    StageBenchSettings,
    StageVariant,
    measure_stages,
    table_rows,
)
from edgeopt.errors import ConfigError


def test_a_small_run_measures_each_stage_and_the_iou(models_dir: Path) -> None:
    settings = StageBenchSettings(
        sizes=((120, 160),),
        frames=6,
        warmup=1,
        block=3,
        clip_frames=4,
        fidelity_frames=3,
        models_dir=str(models_dir),
    )
    variants = [
        StageVariant(name="ort-1t", options={"threads": 1}),
        StageVariant(name="ort-2t", options={"threads": 2}),
    ]
    report = measure_stages(variants, settings)
    assert [r.variant for r in report.results] == ["ort-1t", "ort-2t"]
    for r in report.results:
        assert r.iou is not None and r.iou > 0.99  # the same model: the same masks
        assert r.size == (120, 160)
    rows = table_rows(report)
    assert len(rows) == 2 and all(row[0] in ("ort-1t", "ort-2t") for row in rows)
    data = json.loads(json.dumps(report.to_dict()))  # JSON-ready
    assert len(data["results"]) == 2
    with pytest.raises(ConfigError, match="unique names"):
        measure_stages([variants[0], variants[0]], settings)
