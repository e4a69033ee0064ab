"""Fidelity metrics on known arrays: output errors for any tensor, mask metrics via a reader."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgeopt.errors import ConfigError
from edgeopt.metrics import boundary_f_score, compare_outputs, mask_iou


def _square(top: int, left: int, side: int = 10, size: int = 32) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    m[top : top + side, left : left + side] = 0.9
    return m


def _first_map(x: np.ndarray) -> np.ndarray:
    return np.asarray(x).reshape(32, 32)


def test_identical_outputs_are_perfect() -> None:
    ref = [np.random.default_rng(0).random((1, 32, 32, 1)).astype(np.float32) for _ in range(3)]
    m = compare_outputs(ref, ref, _first_map)
    assert (m.max_abs, m.mean_abs, m.iou, m.iou_min, m.boundary_f, m.samples) == (0, 0, 1, 1, 1, 3)
    assert m.cosine == pytest.approx(1.0) and m.kind == "mask"


def test_mask_iou_of_two_squares() -> None:
    # 10x10 squares offset by 5 columns: intersection 50, union 150.
    assert mask_iou(_square(0, 0), _square(0, 5)) == pytest.approx(50 / 150)
    assert mask_iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0


def test_both_empty_frames_score_one_and_are_counted() -> None:
    empty = np.zeros((1, 32, 32, 1), np.float32)
    m = compare_outputs([empty, _square(0, 0)], [empty, _square(0, 5)], _first_map)
    assert m.iou == pytest.approx((1.0 + 50 / 150) / 2) and m.empty_frames == 1


def test_boundary_f_score_tolerance() -> None:
    a = _square(8, 8)
    assert boundary_f_score(a, _square(9, 9), tolerance=2) == 1.0
    shifted = boundary_f_score(a, _square(8, 14), tolerance=2)
    assert 0.0 < shifted < 1.0
    assert boundary_f_score(a, np.zeros_like(a)) == 0.0


def test_without_a_mask_reader_no_mask_metric_is_claimed() -> None:
    # Raw logits thresholded at 0.5 would call these different; no reader, no IoU at all.
    ref = [np.full((1, 2, 8, 8), 3.0, np.float32)]
    m = compare_outputs(ref, [r + 2.0 for r in ref])
    assert m.kind == "tensor" and math.isnan(m.iou)
    with pytest.raises(ConfigError, match="needs a person-mask output"):
        m.value("iou")
    assert m.max_abs == 2.0


def test_errors_cosine_and_top1_on_known_values() -> None:
    ref = [np.array([[1.0, 0.0]]), np.array([[0.2, 0.8]])]
    cand = [np.array([[0.0, 1.0]]), np.array([[0.1, 0.9]])]
    m = compare_outputs(ref, cand)
    assert m.max_abs == 1.0 and m.top1 == 0.5
    assert m.meets("max_abs", 1.0) and not m.meets("cosine", 0.9)
    with pytest.raises(ConfigError, match="unknown fidelity metric 'psnr'"):
        m.value("psnr")
    with pytest.raises(ConfigError, match="shapes differ"):
        compare_outputs(ref[:1], [np.zeros((1, 3))])


def test_one_bound_syntax_with_errors_that_say_how() -> None:
    from edgeopt.metrics import parse_bound

    assert parse_bound("iou>=0.98") == ("iou", 0.98)
    assert parse_bound(" max_abs <= 1e-3 ") == ("max_abs", 1e-3)
    with pytest.raises(ConfigError, match=r"unknown metric; known: max_abs, mean_abs, cosine"):
        parse_bound("accuracy>=0.9")
    with pytest.raises(ConfigError, match=r"bound max_abs as max_abs<=VALUE"):
        parse_bound("max_abs>=0.1")
    with pytest.raises(ConfigError, match=r"bound iou as iou>=VALUE"):
        parse_bound("iou<=0.9")


def test_cosine_of_a_frame_without_a_person_is_not_noise() -> None:
    rng = np.random.default_rng(0)
    person = [rng.random((1, 8, 8)) for _ in range(11)]
    empty_ref, empty_cand = rng.random((1, 8, 8)) * 1e-20, rng.random((1, 8, 8)) * 1e-20
    m = compare_outputs([*person, empty_ref], [*person, empty_cand])
    assert m.cosine == pytest.approx(1.0)  # was 11/12: the empty frame scored ~0
    # One side empty, the other not: they disagree, and that still counts.
    m = compare_outputs([*person, person[0]], [*person, empty_cand])
    assert m.cosine == pytest.approx(11 / 12)
