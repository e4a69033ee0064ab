"""Real-time background removal: blur, replace or remove the background behind people.

A person-segmentation model (default: the zoo's ``mediapipe-selfie``) runs on every frame
through the same `CompiledModel` that ``edgeopt.compile`` returns and the benchmark measures;
the mask then composites the frame over a blurred, replaced or transparent background::

    frames -> Segmenter (pre -> CompiledModel -> post) -> Compositor -> sink

Front ends: `video.run` (files and cameras to files), `virtualcam.VirtualCameraSink`
(v4l2loopback), the GStreamer element in `gst` (imported only when asked for: it needs
PyGObject), the ``edgeopt bgremove`` command, and the per-stage benchmark in `stagebench`.
"""

from __future__ import annotations

from edgeopt.apps.background.composite import Compositor, EffectOptions, blend, parse_effect
from edgeopt.apps.background.errors import (
    CameraError,
    TruncatedVideoError,
    VideoError,
    VirtualCameraError,
)
from edgeopt.apps.background.remover import BackgroundRemover
from edgeopt.apps.background.segmenter import (
    Segmenter,
    SegmenterOptions,
    StageTimes,
    load_segmenter,
)

__all__ = [
    "BackgroundRemover",
    "CameraError",
    "Compositor",
    "EffectOptions",
    "Segmenter",
    "SegmenterOptions",
    "StageTimes",
    "TruncatedVideoError",
    "VideoError",
    "VirtualCameraError",
    "blend",
    "load_segmenter",
    "parse_effect",
]
