"""The generic task: SNR per output against hand computations, and its edges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeopt.errors import ConfigError
from edgeopt.tasks import GenericTask


def test_snr_of_known_noise_energy_over_samples() -> None:
    # signal 3^2 + 4^2 + 1^2 = 26, noise 0.5^2 + 0.1^2 = 0.26: 10 log10(100) = 20 dB.
    reference = [{"y": np.array([3.0, 4.0]), "z": np.ones(3)}, {"y": np.array([1.0, 0.0])}]
    candidate = [{"y": np.array([3.0, 4.5]), "z": np.ones(3)}, {"y": np.array([1.0, 0.1])}]
    got = GenericTask(outputs=("y",)).score(reference, candidate)
    assert got == pytest.approx({"snr": 20.0, "snr:y": 20.0})
    assert all(type(v) is float for v in got.values())


def test_worst_output_is_the_score_and_identical_outputs_are_capped() -> None:
    ref = {"a": np.array([2, 2], np.int32), "b": np.array([[0.5, -1.0]], np.float32)}
    cand = {"a": np.array([2, 0], np.int32), "b": ref["b"].copy()}
    got = GenericTask().score([ref], [cand])
    # a: signal 8, noise 4 -> 10 log10 2; b: identical -> the 200 dB cap.
    assert got["snr:a"] == pytest.approx(10 * math.log10(2))
    assert got["snr:b"] == 200.0
    assert got["snr"] == got["snr:a"]


def test_zero_reference_and_non_finite_outputs_clamp_to_minus_200() -> None:
    zero = {"y": np.zeros(4, np.float32)}
    assert GenericTask().score([zero], [{"y": np.ones(4)}])["snr"] == -200.0
    assert GenericTask().score([zero], [zero])["snr"] == 200.0
    nan = {"y": np.array([1.0, np.nan])}
    assert GenericTask().score([{"y": np.ones(2)}], [nan])["snr"] == -200.0
    flags = {"m": np.array([True, False, True])}
    assert GenericTask().score([flags], [{"m": np.array([True, True, True])}])["snr"] == (
        pytest.approx(10 * math.log10(2))
    )


def test_missing_output_count_and_shape_mismatch_raise() -> None:
    ref = [{"y": np.ones(3)}]
    with pytest.raises(ConfigError, match=r"'y'.*missing"):
        GenericTask().score(ref, [{"x": np.ones(3)}])
    with pytest.raises(ConfigError, match="'q'"):
        GenericTask(outputs=("q",)).score(ref, ref)
    with pytest.raises(ConfigError, match=r"1 samples.*2"):
        GenericTask().score(ref, ref * 2)
    with pytest.raises(ConfigError, match=r"'y' has shape \(3,\).*\(4,\)"):
        GenericTask().score(ref, [{"y": np.ones(4)}])
    with pytest.raises(ConfigError, match=r"'y'.*not numbers"):
        GenericTask().score(ref, [{"y": np.array(["a", "b", "c"])}])


def test_describe_and_class_attributes() -> None:
    assert GenericTask.metric == "snr"
    assert GenericTask.default_bound == "snr>=30"
    assert "every output" in GenericTask().describe()
