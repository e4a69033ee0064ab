"""The classification task: top-1 agreement counted by hand."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edgeopt.errors import ConfigError
from edgeopt.tasks import ClassificationTask


def test_every_row_is_a_decision() -> None:
    # [2, 3] -> 2 decisions per sample: argmax ref [0, 2], cand [0, 1]; second sample agrees.
    ref = [{"p": np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])}, {"p": np.array([[1.0, 3, 2]])}]
    cand = [{"p": np.array([[0.6, 0.3, 0.1], [0.1, 0.5, 0.4]])}, {"p": np.array([[0, 5.0, 1]])}]
    got = ClassificationTask(output="p").score(ref[:1], cand[:1])
    assert got == {"top1": 0.5, "decisions": 2.0}
    # 3 decisions in all, 2 agree (the [1, 3] sample's argmax is 1 in both).
    got = ClassificationTask(output="p").score(ref, cand)
    assert got["top1"] == pytest.approx(2 / 3)
    assert got["decisions"] == 3.0
    assert all(type(v) is float for v in got.values())


def test_classes_on_another_axis() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(1, 3, 2, 2))  # per-pixel classes on axis 1: 4 decisions
    cand = ref.copy()
    top = ref[0, :, 0, 0].argmax()
    cand[0, (top + 1) % 3, 0, 0] = ref[0, top, 0, 0] + 1  # flips one pixel's decision
    got = ClassificationTask(output="seg", axis=1).score([{"seg": ref}], [{"seg": cand}])
    assert got == {"top1": 0.75, "decisions": 4.0}


def test_bad_axis_missing_output_and_unknown_fields() -> None:
    sample = {"p": np.ones((2, 3))}
    with pytest.raises(ConfigError, match=r"'p' has shape \(2, 3\).*axis 2"):
        ClassificationTask(output="p", axis=2).score([sample], [sample])
    with pytest.raises(ConfigError, match=r"'logits'.*missing.*'p'"):
        ClassificationTask(output="logits").score([sample], [sample])
    with pytest.raises(ValidationError):
        ClassificationTask(output="p", topk=5)  # type: ignore[call-arg]
