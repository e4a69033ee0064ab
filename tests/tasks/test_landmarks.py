"""The landmarks task: normalized mean error of shifts of known length."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from edgeopt.errors import ConfigError
from edgeopt.tasks import LandmarksTask


def test_a_3_4_5_shift_in_pixels() -> None:
    points = np.array([[10.0, 20.0, 0.0], [50.0, 60.0, 1.0], [100.0, 5.0, -2.0]])
    moved = points.copy()
    moved[0, :2] += (3.0, 4.0)  # 5 px
    moved[:, 2] += 30.0  # z is not compared
    task = LandmarksTask(output="lm", coordinate_scale=256.0)
    ref = [{"lm": points.reshape(1, 1, 1, 9).astype(np.float32)}]
    cand = [{"lm": moved.reshape(1, 1, 1, 9).astype(np.float32)}]
    got = task.score(ref, cand)
    assert got["nme"] == pytest.approx(5 / 256 / 3)
    assert got["nme_max"] == pytest.approx(5 / 256)
    assert all(type(v) is float for v in got.values())
    # Over two samples (the second identical) the mean halves, the worst stays.
    got = task.score(ref * 2, [*cand, ref[0]])
    assert got["nme"] == pytest.approx(5 / 256 / 6)
    assert got["nme_max"] == pytest.approx(5 / 256)


def test_normalized_points_with_extra_values_after_them() -> None:
    # Two (x, y) points in [0, 1] and a presence score appended: only `points` are scored.
    ref = np.array([0.5, 0.5, 0.2, 0.2, 0.99])
    cand = np.array([0.5, 0.56, 0.2, 0.2, 0.10])
    task = LandmarksTask(output="lm", values_per_point=2, coordinate_scale=1.0, points=2)
    got = task.score([{"lm": ref}], [{"lm": cand}])
    assert got == pytest.approx({"nme": 0.03, "nme_max": 0.06})
    assert task.decode({"lm": ref}).shape == (2, 2)


def test_sizes_that_do_not_hold_the_points_raise() -> None:
    five = {"lm": np.zeros((1, 5))}
    with pytest.raises(ConfigError, match=r"'lm' has shape \(1, 5\).*points"):
        LandmarksTask(output="lm", coordinate_scale=1.0).score([five], [five])
    with pytest.raises(ConfigError, match=r"'lm' has shape \(1, 5\).*fewer than 2"):
        LandmarksTask(output="lm", coordinate_scale=1.0, points=2).score([five], [five])
    with pytest.raises(ConfigError, match="'lm'"):
        LandmarksTask(output="lm", coordinate_scale=1.0).score([five], [{"lm": np.zeros(6)}])
    with pytest.raises(ValidationError):
        LandmarksTask(output="lm", coordinate_scale=0.0)
    with pytest.raises(ValidationError):
        LandmarksTask(output="lm", coordinate_scale=1.0, values_per_point=1)
