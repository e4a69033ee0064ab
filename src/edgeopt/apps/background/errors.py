"""Errors of the background-removal application, all under `edgeopt.errors.EdgeoptError`.

::

    EdgeoptError
    └── VideoError                 a video source or sink cannot be opened, read or written
        ├── CameraError            a camera index that does not open
        ├── TruncatedVideoError    an input that ends before its declared frame count
        └── VirtualCameraError     no v4l2loopback device, or pyvirtualcam missing
"""

from __future__ import annotations

from edgeopt.errors import EdgeoptError

__all__ = ["CameraError", "TruncatedVideoError", "VideoError", "VirtualCameraError"]


class VideoError(EdgeoptError):
    """A video source or sink cannot be opened, read or written."""


class CameraError(VideoError):
    """A camera that cannot be opened."""


class TruncatedVideoError(VideoError):
    """An input video that ends (or breaks) before all its frames were read.

    Attributes:
        frames_done: Frames read, processed and written before the input broke.
        frames_expected: Frames the container declared.
    """

    def __init__(self, message: str, frames_done: int, frames_expected: int) -> None:
        self.frames_done = frames_done
        self.frames_expected = frames_expected
        super().__init__(message)


class VirtualCameraError(VideoError):
    """A virtual camera that cannot be opened (no v4l2loopback device, no pyvirtualcam)."""
