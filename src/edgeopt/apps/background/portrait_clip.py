"""A sample clip with real people and a moving camera, made from public-domain portraits.

No video is downloaded: the two portraits that ship inside registry packages — scikit-image's
``astronaut`` (Eileen Collins) and matplotlib's ``grace_hopper.jpg`` — are filmed by a virtual
camera that pans, zooms and sways across each photo in turn (a subpixel affine warp per
frame), so both the person and the background move in the frame. Frames are deterministic:
the same arguments give the same pixels, which lets tests compare masks with references.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from edgeopt import data
from edgeopt.apps.background.video import FileSink

__all__ = ["portraits", "sample_frames", "write_sample"]


def portraits() -> list[np.ndarray]:
    """The two portraits, BGR uint8: astronaut (512x512), Grace Hopper (600x512)."""
    return [np.ascontiguousarray(image[..., ::-1]) for image in data.portraits()]


def sample_frames(size: tuple[int, int] = (480, 640), count: int = 60) -> Iterator[np.ndarray]:
    """The sample clip's frames, BGR uint8: the first half astronaut, the second Grace Hopper.

    Args:
        size: (height, width) of the frames.
        count: Number of frames.
    """
    images = portraits()
    half = max(1, count // 2)
    for i in range(count):
        image = images[0] if i < half else images[1]
        n = half if i < half else max(1, count - half)
        yield data.camera_frame(image, (i % half) / n, size)


def write_sample(
    path: str | os.PathLike[str],
    size: tuple[int, int] = (480, 640),
    seconds: float = 4.0,
    fps: float = 30.0,
) -> Path:
    """Write the sample clip as a video file (container from the suffix).

    Args:
        path: Output file (.mp4, .mkv, .webm, .avi).
        size: (height, width).
        seconds: Length.
        fps: Frame rate.

    Returns:
        The path written.
    """
    sink = FileSink(path, fps, size)
    try:
        for frame in sample_frames(size, max(1, round(seconds * fps))):
            sink.write(frame)
    except BaseException:
        sink.discard()
        raise
    sink.close()
    return Path(path)
