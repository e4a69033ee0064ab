"""Fixtures of the background-removal tests: a tiny "red is a person" model, and the real one.

The tiny model (input [1,32,32,3] NHWC RGB in [0,1], output sigmoid(40 * (R - 0.5))) makes
masks that are known exactly: red pixels are the person. The real MediaPipe model is pulled
through the zoo from the verified offline copies into a per-session cache.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest


def _red_blue_frame(size: tuple[int, int] = (120, 160)) -> np.ndarray:
    """A BGR frame: the left half red (person), the right half a blue-green ramp (background)."""
    h, w = size
    frame = np.zeros((h, w, 3), np.uint8)
    frame[:, : w // 2, 2] = 230
    ramp = np.linspace(0, 255, w - w // 2, dtype=np.float32)
    frame[:, w // 2 :, 0] = 200
    frame[:, w // 2 :, 1] = ramp.astype(np.uint8)[None, :]
    frame[::8, w // 2 :, :2] = 30  # stripes: texture for the blur to remove
    return frame


@pytest.fixture
def red_blue_frame() -> Callable[..., np.ndarray]:
    """Factory of BGR frames: the left half red (person), the right half textured background."""
    return _red_blue_frame
