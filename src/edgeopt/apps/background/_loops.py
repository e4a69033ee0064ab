"""The per-pixel loops of `kernels`, compiled by Numba (imported on the first blend only).

Kept apart so that importing the app (every ``edgeopt`` command does, for its help) neither
imports Numba (0.1 s) nor configures OpenMP; see `kernels` for what the loops do and why they
are written by hand.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np

__all__ = ["LOOPS"]

_u16 = np.uint16


@numba.njit(inline="always", cache=True)
def _mix(f: np.uint8, b: np.uint16, a: np.uint16, na: np.uint16) -> np.uint8:
    """``(f * a + b * na) / 255``, rounded, exactly; ``a + na = 255``.

    Each step is cast back to 16 bits: Numba widens integer arithmetic to 64 bits, and the
    casts let LLVM use 16-bit SIMD lanes (32 per AVX-512 register).
    """
    v = _u16(_u16(_u16(f) * a) + _u16(_u16(b) * na) + _u16(128))
    return np.uint8(_u16(v + _u16(v >> 8)) >> 8)  # v / 255, rounded: exact for v < 65536


@numba.njit(inline="always", cache=True)
def _blend_row(o: np.ndarray, f: np.ndarray, b: np.ndarray, m: np.ndarray, width: int) -> None:
    for x in range(width):
        a = _u16(m[x])
        na = _u16(_u16(255) - a)
        for c in range(3):
            o[3 * x + c] = _mix(f[3 * x + c], b[3 * x + c], a, na)


@numba.njit(inline="always", cache=True)
def _grid_row(
    o: np.ndarray,
    f: np.ndarray,
    r0: np.ndarray,
    r1: np.ndarray,
    w0: np.uint16,
    w1: np.uint16,
    m: np.ndarray,
    width: int,
) -> None:
    for x in range(width):
        a = _u16(m[x])
        na = _u16(_u16(255) - a)
        for c in range(3):
            i = 3 * x + c
            b = _u16(_u16(_u16(_u16(r0[i]) * w0) + _u16(_u16(r1[i]) * w1) + _u16(128)) >> 8)
            o[i] = _mix(f[i], b, a, na)


# One loop per way the output may alias an input. The rows are inlined into each, so where
# ``out`` is an input LLVM sees one pointer and vectorizes; given the same array under two
# names it checks at run time whether they overlap, finds they do, and runs its scalar loop:
# 2.1-2.3 ms instead of 0.45-0.5 ms at 720p (the GStreamer element composites in place).


def blend(out: np.ndarray, fg: np.ndarray, bg: np.ndarray, mask: np.ndarray) -> None:
    for y in numba.prange(mask.shape[0]):
        _blend_row(out[y].reshape(-1), fg[y].reshape(-1), bg[y].reshape(-1), mask[y], mask.shape[1])


def blend_on_fg(out: np.ndarray, bg: np.ndarray, mask: np.ndarray) -> None:
    """`blend` with ``out`` the foreground itself."""
    for y in numba.prange(mask.shape[0]):
        o = out[y].reshape(-1)
        _blend_row(o, o, bg[y].reshape(-1), mask[y], mask.shape[1])


def blend_on_bg(out: np.ndarray, fg: np.ndarray, mask: np.ndarray) -> None:
    """`blend` with ``out`` the background itself."""
    for y in numba.prange(mask.shape[0]):
        o = out[y].reshape(-1)
        _blend_row(o, fg[y].reshape(-1), o, mask[y], mask.shape[1])


@numba.njit(inline="always", cache=True)
def _grid_line(
    o: np.ndarray,
    f: np.ndarray,
    wide: np.ndarray,
    mask: np.ndarray,
    top: np.ndarray,
    bottom: np.ndarray,
    weight: np.ndarray,
    y: int,
) -> None:
    """`_grid_row` for frame row ``y``: its two grid rows and their weights."""
    w1 = _u16(weight[y])
    r0, r1 = wide[top[y]].reshape(-1), wide[bottom[y]].reshape(-1)
    _grid_row(o, f, r0, r1, _u16(_u16(256) - w1), w1, mask[y], mask.shape[1])


def grid(
    out: np.ndarray,
    fg: np.ndarray,
    wide: np.ndarray,
    mask: np.ndarray,
    top: np.ndarray,
    bottom: np.ndarray,
    weight: np.ndarray,
) -> None:
    for y in numba.prange(mask.shape[0]):
        _grid_line(out[y].reshape(-1), fg[y].reshape(-1), wide, mask, top, bottom, weight, y)


def grid_on_fg(
    out: np.ndarray,
    wide: np.ndarray,
    mask: np.ndarray,
    top: np.ndarray,
    bottom: np.ndarray,
    weight: np.ndarray,
) -> None:
    """`grid` with ``out`` the foreground itself."""
    for y in numba.prange(mask.shape[0]):
        o = out[y].reshape(-1)
        _grid_line(o, o, wide, mask, top, bottom, weight, y)


LOOPS: dict[str, Callable[..., None]] = {
    "blend": blend,
    "blend_on_fg": blend_on_fg,
    "blend_on_bg": blend_on_bg,
    "grid": grid,
    "grid_on_fg": grid_on_fg,
}
"""The loops by name, compiled and run by `edgeopt.pixels.parallel.Loops`."""
