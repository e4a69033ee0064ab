"""A virtual camera sink: processed frames appear as a webcam that video-call apps can pick.

On Linux it is ``pyvirtualcam`` on a v4l2loopback device. The kernel module is not part of
this project; load it once per boot::

    sudo apt-get install v4l2loopback-dkms
    sudo modprobe v4l2loopback devices=1 exclusive_caps=1 card_label="edgeopt"

then ``edgeopt bgremove --camera 0 --virtual-camera`` and choose "edgeopt" as the camera in
the call. When no loopback device exists, opening the sink raises one `VirtualCameraError`
whose message says exactly that, and nothing else is touched (the CLI prints it as one line
and exits 1). The camera factory is a parameter so tests can run the sink against a fake
device.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.apps.background.errors import VirtualCameraError

__all__ = ["LOAD_HINT", "VirtualCameraSink", "loopback_devices"]

_log = logging.getLogger(__name__)

LOAD_HINT = (
    "load the v4l2loopback kernel module: sudo modprobe v4l2loopback devices=1 "
    'exclusive_caps=1 card_label="edgeopt" (Debian package v4l2loopback-dkms), then retry'
)
"""How to get a loopback device, as the error says it."""

CameraFactory = Callable[..., Any]


def loopback_devices() -> list[str]:
    """The v4l2loopback devices of this machine (``/dev/videoN``), from sysfs.

    Loopback devices are virtual: they sit under ``/sys/devices/virtual/video4linux``, where
    real cameras (USB, PCI) never do.
    """
    root = Path("/sys/devices/virtual/video4linux")
    return sorted(f"/dev/{p.name}" for p in root.glob("video*")) if root.is_dir() else []


def _pyvirtualcam_camera(**kwargs: Any) -> Any:
    # Checked here rather than left to pyvirtualcam: its native backend reports a missing
    # device by a C++ exception, which aborted the whole process (instead of raising) once
    # GStreamer's libraries were loaded in it.
    device = kwargs.get("device")
    found = loopback_devices()
    if sys.platform.startswith("linux") and (device not in found if device else not found):
        raise VirtualCameraError(
            f"no v4l2loopback device at {device or '/dev/video*'}: {LOAD_HINT}"
        )
    try:
        import pyvirtualcam  # type: ignore[import-untyped]
    except ImportError as e:
        raise VirtualCameraError(
            "the virtual camera needs pyvirtualcam: pip install 'edgeopt[virtualcam]'"
        ) from e
    return pyvirtualcam.Camera(fmt=pyvirtualcam.PixelFormat.BGR, **kwargs)


class VirtualCameraSink:
    """Sends BGR frames to a virtual camera, paced to its frame rate.

    Args:
        size: (height, width) of the frames.
        fps: Frame rate announced to readers.
        device: A loopback device such as ``/dev/video10``; None: the first one found.
        pace: Sleep between frames to hold ``fps`` (for file inputs; a camera paces itself).
        camera_factory: Builds the camera (``pyvirtualcam.Camera`` keyword arguments); tests
            pass a fake device here.

    Raises:
        VirtualCameraError: No loopback device (the message says how to load one), or
            pyvirtualcam is missing.
    """

    def __init__(
        self,
        size: tuple[int, int],
        fps: float,
        device: str | None = None,
        pace: bool = False,
        camera_factory: CameraFactory | None = None,
    ) -> None:
        factory = camera_factory or _pyvirtualcam_camera
        self.size = size
        self.pace = pace
        self.frames = 0
        try:
            self._cam = factory(
                width=size[1], height=size[0], fps=fps, device=device, backend="v4l2loopback"
            )
        except VirtualCameraError:
            raise
        except RuntimeError as e:
            text = str(e)
            if "loopback" in text.lower() or "does not exist" in text:
                where = device or "/dev/video*"
                raise VirtualCameraError(f"no v4l2loopback device at {where}: {LOAD_HINT}") from e
            raise VirtualCameraError(f"the virtual camera cannot be opened: {text}") from e
        _log.info("virtual camera: %s", getattr(self._cam, "device", device))

    @property
    def device(self) -> str:
        """The device frames go to."""
        return str(getattr(self._cam, "device", ""))

    def write(self, frame: np.ndarray) -> None:
        """Send one BGR (or BGRA, alpha dropped) uint8 frame.

        Raises:
            VirtualCameraError: A frame of the wrong size.
        """
        if frame.shape[:2] != self.size:
            raise VirtualCameraError(
                f"virtual camera {self.device}: frame of size {frame.shape[:2]}, "
                f"the camera was opened at {self.size}"
            )
        if frame.shape[2] == 4:
            frame = np.ascontiguousarray(frame[:, :, :3])
        self._cam.send(frame)
        self.frames += 1
        if self.pace:
            self._cam.sleep_until_next_frame()

    def close(self) -> None:
        """Release the device."""
        self._cam.close()
