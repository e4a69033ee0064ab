"""SSD anchors: MediaPipe's detector configurations and a hand-computed small one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from edgeopt.tasks import SsdAnchors

MEDIAPIPE = {
    # name: (input side, strides, anchors MediaPipe's models have, first grid side)
    "face short range": (128, (8, 16, 16, 16), 896, 16),
    "palm": (192, (8, 16, 16, 16), 2016, 24),
    "pose": (224, (8, 16, 32, 32, 32), 2254, 28),
}


@pytest.mark.parametrize("name", list(MEDIAPIPE))
def test_mediapipe_detectors_anchor_counts_and_first_centre(name: str) -> None:
    side, strides, count, grid = MEDIAPIPE[name]
    anchors = SsdAnchors(
        input_size_height=side,
        input_size_width=side,
        num_layers=len(strides),
        min_scale=0.1484375,
        max_scale=0.75,
        strides=strides,
        fixed_anchor_size=True,
    ).generate()
    assert anchors.shape == (count, 4)
    assert anchors.dtype == np.float32
    # Two anchors per cell on the first grid (ratio 1 + the interpolated one), same centre.
    np.testing.assert_allclose(anchors[0], [0.5 / grid, 0.5 / grid, 1, 1])
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[2], [1.5 / grid, 0.5 / grid, 1, 1])
    # The last anchor sits in the last grid's last cell.
    last = math.ceil(side / strides[-1])
    np.testing.assert_allclose(anchors[-1], [1 - 0.5 / last, 1 - 0.5 / last, 1, 1], rtol=1e-6)


def test_sizes_of_a_small_configuration_by_hand() -> None:
    anchors = SsdAnchors(
        input_size_height=32,
        input_size_width=32,
        num_layers=2,
        min_scale=0.2,
        max_scale=0.6,
        strides=(8, 16),
        aspect_ratios=(1.0, 2.0),
    ).generate()
    # Layer 0: 4x4 cells x 3 anchors (0.2 at ratios 1 and 2, sqrt(0.2 * 0.6) at 1);
    # layer 1: 2x2 x 3 (0.6 at 1 and 2, sqrt(0.6 * 1.0) the last layer's interpolation).
    assert anchors.shape == (4 * 4 * 3 + 2 * 2 * 3, 4)
    r2 = math.sqrt(2)
    np.testing.assert_allclose(anchors[0], [0.125, 0.125, 0.2, 0.2], rtol=1e-6)
    np.testing.assert_allclose(anchors[1], [0.125, 0.125, 0.2 * r2, 0.2 / r2], rtol=1e-6)
    i = math.sqrt(0.12)
    np.testing.assert_allclose(anchors[2], [0.125, 0.125, i, i], rtol=1e-6)
    np.testing.assert_allclose(anchors[3, :2], [0.375, 0.125])
    np.testing.assert_allclose(anchors[48], [0.25, 0.25, 0.6, 0.6], rtol=1e-6)
    s = math.sqrt(0.6)
    np.testing.assert_allclose(anchors[50], [0.25, 0.25, s, s], rtol=1e-6)


def test_reduced_lowest_layer_feature_maps_and_one_layer() -> None:
    anchors = SsdAnchors(
        input_size_height=300,
        input_size_width=300,
        num_layers=2,
        min_scale=0.2,
        max_scale=0.95,
        strides=(16, 32),
        reduce_boxes_in_lowest_layer=True,
        feature_map_height=(3, 1),
        feature_map_width=(2, 1),
    ).generate()
    # Layer 0: 3x2 cells x (0.1 at 1, 0.2 at 2, 0.2 at 0.5); layer 1: 1 cell x 2.
    assert anchors.shape == (3 * 2 * 3 + 2, 4)
    r2 = math.sqrt(2)
    np.testing.assert_allclose(anchors[0], [0.25, 1 / 6, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(anchors[1, 2:], [0.2 * r2, 0.2 / r2], rtol=1e-6)
    np.testing.assert_allclose(anchors[2, 2:], [0.2 / r2, 0.2 * r2], rtol=1e-6)
    np.testing.assert_allclose(anchors[-2], [0.5, 0.5, 0.95, 0.95], rtol=1e-6)
    one = SsdAnchors(
        input_size_height=8,
        input_size_width=8,
        num_layers=1,
        min_scale=0.2,
        max_scale=0.4,
        strides=(8,),
        interpolated_scale_aspect_ratio=0.0,
    ).generate()
    np.testing.assert_allclose(one, [[0.5, 0.5, 0.3, 0.3]], rtol=1e-6)  # (min + max) / 2


def test_inconsistent_options_are_rejected() -> None:
    base = dict(input_size_height=8, input_size_width=8, min_scale=0.1, max_scale=0.5)
    with pytest.raises(ValidationError, match="one stride per layer"):
        SsdAnchors(**base, num_layers=2, strides=(8,))
    with pytest.raises(ValidationError, match="feature_map"):
        SsdAnchors(**base, num_layers=1, strides=(8,), feature_map_height=(1,))
    with pytest.raises(ValidationError):
        SsdAnchors(**base, num_layers=1, strides=(8,), anchor_offset=0.5)
