"""The per-pixel loops of `resize`, compiled by Numba (imported on the first call only)."""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

__all__ = ["LOOPS"]

_f32 = np.float32


def resize_normalize(
    out: np.ndarray,
    frame: np.ndarray,
    top: np.ndarray,
    bottom: np.ndarray,
    down: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    across: np.ndarray,
    channels: np.ndarray,
    scale: np.ndarray,
    shift: np.ndarray,
) -> None:
    width, depth = frame.shape[1], frame.shape[2]
    for y in numba.prange(out.shape[0]):
        # The two source rows blended into one (a contiguous pass LLVM vectorizes), then each
        # output pixel reads two of its pixels.
        r0, r1, a = frame[top[y]].reshape(-1), frame[bottom[y]].reshape(-1), down[y]
        row = np.empty(width * depth, np.float32)
        for i in range(width * depth):
            p = _f32(r0[i])
            row[i] = p + (_f32(r1[i]) - p) * a
        o = out[y]
        for x in range(out.shape[1]):
            i0, i1, b = left[x] * depth, right[x] * depth, across[x]
            for c in range(3):
                p = row[i0 + channels[c]]
                o[x, c] = (p + (row[i1 + channels[c]] - p) * b) * scale[c] + shift[c]


LOOPS: dict[str, Callable[..., None]] = {"resize_normalize": resize_normalize}
"""The loops by name, compiled and run by `edgeopt.pixels.parallel.Loops`."""
