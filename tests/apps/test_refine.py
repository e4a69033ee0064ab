"""Mask refinement: stray blobs and holes, guided edges, and the options that turn them on."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edgeopt.apps.background import SegmenterOptions
from edgeopt.apps.background.refine import GuidedRefiner, remove_small_blobs


def test_small_blobs_go_the_person_stays_and_small_holes_fill() -> None:
    mask = np.zeros((256, 256), np.uint8)
    cv2.ellipse(mask, (128, 160), (60, 95), 0, 0, 360, 255, -1)  # the person
    cv2.circle(mask, (20, 20), 5, 255, -1)  # a stray blob: 0.12 % of the frame
    cv2.circle(mask, (128, 150), 4, 0, -1)  # a small hole in the person
    mask = cv2.GaussianBlur(mask, (0, 0), 1.0)  # soft edges, as the model gives
    out = remove_small_blobs(mask, 0.002)
    assert out[10:31, 10:31].max() == 0  # the blob and its soft ring are gone
    assert out[146:155, 124:133].min() == 255  # the hole is filled
    person = (mask >= 128) & (np.hypot(*np.mgrid[-128:128, -128:128]) > 40)
    person[:40, :40] = False  # the blob
    np.testing.assert_array_equal(out[person], mask[person])  # the person is untouched
    assert remove_small_blobs(mask, 0.0) is mask  # 0: off
    clean = remove_small_blobs(out, 0.002)
    assert clean is out  # nothing left to drop or fill: the mask itself, no copy


def test_hundreds_of_specks_go_and_a_hole_in_a_big_blob_fills() -> None:
    """More than 256 components (labels past a uint8 lookup table), specks on a background
    that reaches the border, and big blobs kept whole."""
    mask = np.zeros((256, 256), np.uint8)
    mask[100:200, 20:236] = 255  # the person
    mask[150:153, 120:123] = 0  # a small hole
    for dy in (0, 1):  # 18 x 51 = 918 specks of 2x2 pixels above it
        for dx in (0, 1):
            mask[2 + dy : 90 : 5, 2 + dx : 254 : 5] = 255
    out = remove_small_blobs(mask, 0.002)
    assert out[:92].max() == 0  # every speck (and its ring) is gone
    assert out[150:153, 120:123].min() == 255  # the hole is filled
    np.testing.assert_array_equal(out[100:200, 40:220], 255)
    assert out[210:].max() == 0  # the background below is left as it was


def test_guided_refinement_moves_the_edge_onto_the_frame_edge() -> None:
    h, w = 240, 320
    frame = np.full((h, w, 3), 40, np.uint8)
    frame[:, :150] = 210  # the true edge of a bright person at x = 150
    small = np.zeros((60, 80), np.uint8)
    small[:, :40] = 255  # the model's coarse edge (4 frame pixels a model pixel): x = 160
    mask = cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.0), (w, h), interpolation=cv2.INTER_LINEAR)
    out = np.empty_like(mask)
    GuidedRefiner()(mask, frame, "BGR", out)

    def edge_error(m: np.ndarray) -> float:
        crossing = (m[h // 4 : 3 * h // 4] >= 128).sum(axis=1)  # person pixels per row
        return float(np.abs(crossing - 150).mean())

    assert edge_error(out) < edge_error(mask) / 2, (edge_error(out), edge_error(mask))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_area", -0.1, "greater than or equal to 0"),
        ("min_area", 0.9, "less than or equal to 0.5"),
        ("refine", "bilateral", "'none' or 'guided'"),
    ],
)
def test_refinement_options_are_validated(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SegmenterOptions.model_validate({field: value})
