"""The one-pass resize-and-normalize against OpenCV's float bilinear resize, then numpy."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edgeopt.pixels.resize import resize_normalize


def _reference(
    frame: np.ndarray,
    size: tuple[int, int],
    picks: tuple[int, ...],
    mean: np.ndarray,
    std: np.ndarray,
) -> np.ndarray:
    resized = cv2.resize(frame.astype(np.float32), size[::-1], interpolation=cv2.INTER_LINEAR)
    return np.asarray((resized[..., list(picks)] - mean) / std, np.float32)


@pytest.mark.parametrize(
    ("shape", "size"),
    [((720, 1280, 3), (256, 256)), ((479, 641, 4), (144, 256)), ((33, 47, 3), (64, 80))],
)
def test_matches_a_float_resize_then_normalization(
    shape: tuple[int, int, int], size: tuple[int, int]
) -> None:
    """Downscales, a 4-channel frame and an upscale, channels reordered, ImageNet constants."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, shape, dtype=np.uint8)
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)
    picks = (2, 1, 0)
    want = _reference(frame, size, picks, mean, std)
    out = np.empty((*size, 3), np.float32)
    got = resize_normalize(frame, out, picks, 1 / std, -mean / std)
    assert got is out
    np.testing.assert_allclose(got, want, atol=1e-4)
    nchw = np.empty((3, *size), np.float32)  # channels first, written through a view
    resize_normalize(frame, nchw.transpose(1, 2, 0), picks, 1 / std, -mean / std)
    np.testing.assert_allclose(nchw, want.transpose(2, 0, 1), atol=1e-4)


def test_a_frame_view_and_the_alpha_channel_left_out() -> None:
    """A non-contiguous frame (a crop) read as RGBA -> BGR: the alpha never reaches the input."""
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (100, 120, 4), dtype=np.uint8)
    crop = big[10:90, 20:100]
    out = np.empty((40, 40, 3), np.float32)
    ones, zeros = np.ones(3, np.float32), np.zeros(3, np.float32)
    resize_normalize(crop, out, (2, 1, 0), ones, zeros)
    want = _reference(np.ascontiguousarray(crop), (40, 40), (2, 1, 0), zeros, ones)
    np.testing.assert_allclose(out, want, atol=1e-3)
