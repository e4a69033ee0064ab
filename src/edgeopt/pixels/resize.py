"""A frame to a model's input tensor in one pass: bilinear resize, channel order, normalization.

``out[y, x, c] = bilinear(frame)[y, x, channels[c]] * scale[c] + shift[c]`` in float32, pixel
centres aligned as ``cv2.resize`` aligns them (``INTER_LINEAR``, without its rounding to uint8),
written straight into the input tensor (channels-last, or channels-first through a transposed
view), rows split over the CPUs.

Written by hand because the library calls it replaces read the frame on one thread and write
three intermediate images: ``cv2.resize`` (0.31 ms for a 720p frame to 256x256 on a 2-core
Xeon, Sapphire Rapids, shared, December 2026; its time goes to reading the source rows, and
OpenCV's threads did not shorten it), ``cv2.cvtColor`` and a numpy multiply-add to float.
This pass: 0.29 ms for the whole pre-processing step inside the background-removal pipeline,
where those three took 0.45 ms.
"""

from __future__ import annotations

import functools
from types import ModuleType

import numpy as np

from edgeopt.pixels.parallel import Loops

__all__ = ["bilinear_taps", "resize_normalize"]


def _load() -> ModuleType:
    from edgeopt.pixels import _loops

    return _loops


_run = Loops(_load)


@functools.lru_cache(maxsize=32)
def bilinear_taps(size: int, source: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each of ``size`` output positions along an axis of ``source`` pixels: the source
    pixel before, the one after, and the weight of the one after (``cv2.INTER_LINEAR``'s
    sampling: centres aligned, clamped at the borders)."""
    s = np.maximum((np.arange(size) + 0.5) * source / size - 0.5, 0.0)
    first = np.minimum(np.floor(s).astype(np.intp), source - 1)
    second = np.minimum(first + 1, source - 1)
    weight = (s - first).astype(np.float32)
    for a in (first, second, weight):
        a.flags.writeable = False
    return first, second, weight


def resize_normalize(
    frame: np.ndarray,
    out: np.ndarray,
    channels: tuple[int, int, int],
    scale: np.ndarray,
    shift: np.ndarray,
) -> np.ndarray:
    """Resize ``frame`` bilinearly to ``out``'s size, pick and normalize its channels, into ``out``.

    Args:
        frame: HxWxC uint8 image (C >= 3).
        out: hxwx3 float32, written in place; may be a transposed view of a channels-first
            tensor.
        channels: The frame channel each output channel reads (``(2, 1, 0)``: BGR to RGB).
        scale: Three float32 factors, one per output channel.
        shift: Three float32 offsets, one per output channel.

    Returns:
        ``out``.
    """
    h, w = out.shape[:2]
    top, bottom, down = bilinear_taps(h, frame.shape[0])
    left, right, across = bilinear_taps(w, frame.shape[1])
    picks = np.asarray(channels, np.intp)
    _run(
        "resize_normalize",
        out,
        np.ascontiguousarray(frame),
        top,
        bottom,
        down,
        left,
        right,
        across,
        picks,
        scale,
        shift,
    )
    return out
