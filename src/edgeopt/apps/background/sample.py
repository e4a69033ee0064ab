"""A sample clip with real people and a moving camera, made from public-domain portraits.

No video is downloaded: the two portraits that ship inside registry packages — scikit-image's
``astronaut`` (Eileen Collins) and matplotlib's ``grace_hopper.jpg`` — are filmed by a virtual
camera that pans, zooms and sways across each photo in turn (a subpixel affine warp per
frame), so both the person and the background move in the frame. Frames are deterministic:
the same arguments give the same pixels, which lets tests compare masks with references.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from edgeopt.apps.background.video import FileSink
from edgeopt.errors import ConfigError

__all__ = ["portraits", "sample_frames", "write_sample"]


def portraits() -> list[np.ndarray]:
    """The two portraits, BGR uint8: astronaut (512x512), Grace Hopper (600x512)."""
    import matplotlib.cbook
    import skimage.data

    image = np.asarray(skimage.data.astronaut())  # type: ignore[no-untyped-call]
    astronaut = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    hopper = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if hopper is None:  # matplotlib ships it; only a broken install lacks it
        raise ConfigError(f"{path}: matplotlib's sample image grace_hopper.jpg is unreadable")
    return [np.ascontiguousarray(astronaut), np.asarray(hopper, np.uint8)]


def _camera(image: np.ndarray, t: float, size: tuple[int, int]) -> np.ndarray:
    """One frame of a camera over ``image`` at phase ``t`` in [0, 1)."""
    height, width = size
    ih, iw = image.shape[:2]
    aspect = width / height
    # A window of the output's aspect that fits the photo, zooming between 100% and 80%.
    zoom = 0.9 + 0.1 * math.cos(2 * math.pi * t)
    ww = zoom * min(iw, ih * aspect)
    wh = ww / aspect
    cx = iw / 2 + (iw - ww) / 2 * math.sin(2 * math.pi * t)
    # Portraits have the face in the upper half: sway between the top and a little lower.
    cy = wh / 2 + (ih - wh) * 0.3 * (0.5 + 0.5 * math.sin(4 * math.pi * t + 0.5))
    angle = 3.0 * math.sin(2 * math.pi * t)  # a slight sway, in degrees
    scale = width / ww
    m = cv2.getRotationMatrix2D((cx, cy), angle, scale)
    m[0, 2] += width / 2 - cx
    m[1, 2] += height / 2 - cy
    return cv2.warpAffine(
        image, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
    )


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
        yield _camera(image, (i % half) / n, size)


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
