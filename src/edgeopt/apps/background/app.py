"""The whole application in one call: a typed run configuration and `remove_background`.

``edgeopt bgremove`` parses its flags into a `RunConfig` and calls `remove_background`; the
Python API does the same. The order of work is chosen so a mistake fails before anything is
written: the source is opened first (its size and rate are needed), then the model compiled,
then the sink opened — a missing loopback device or a bad output suffix stops the run with
the source released and no file created.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeopt._fs import check_distinct
from edgeopt.apps.background.composite import Compositor, effect_from_args
from edgeopt.apps.background.encode import CODECS, AvFileSink
from edgeopt.apps.background.remover import BackgroundRemover
from edgeopt.apps.background.segmenter import SegmenterOptions, load_segmenter
from edgeopt.apps.background.video import (
    CaptureSource,
    FileSink,
    FrameSink,
    Progress,
    RunSummary,
    open_camera,
    open_file,
    run,
)
from edgeopt.apps.background.virtualcam import CameraFactory, VirtualCameraSink

__all__ = ["RunConfig", "remove_background"]


class RunConfig(BaseModel):
    """One background-removal run: where frames come from and go, and how they are treated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str | None = Field(default=None, description="Input video file (or use camera).")
    camera: int | None = Field(default=None, ge=0, description="Camera index (/dev/videoN).")
    camera_size: tuple[int, int] | None = Field(
        default=None, description="Requested camera (height, width)."
    )
    output: str | None = Field(default=None, description="Output video file (.mp4 .mkv ...).")
    virtual_camera: bool = Field(default=False, description="Send frames to a v4l2loopback cam.")
    device: str | None = Field(default=None, description="Loopback device, e.g. /dev/video10.")
    effect: str = Field(default="blur", description="blur[:SIGMA], replace:FILE, remove, mask.")
    background: str | None = Field(
        default=None, description="Background file (replace) or key colour (remove)."
    )
    model: str = Field(default="mediapipe-selfie", description="Zoo model name or .onnx path.")
    backend: str = Field(default="onnxruntime", description="Backend that runs the model.")
    optimize: bool = Field(
        default=True, description="On ONNX Runtime, run zoo models through the exact ort_layout."
    )
    variant: str | None = Field(default=None, description="Optimized .onnx of the zoo model.")
    threads: int | None = Field(
        default=None,
        ge=1,
        description="Inference threads; None: every core (ONNX Runtime: one while other "
        "processes hold a core).",
    )
    mask: SegmenterOptions = Field(
        default_factory=SegmenterOptions, description="Mask post-processing and frame skipping."
    )
    budget_ms: float | None = Field(
        default=None, gt=0, description="Per-frame budget; the model runs less often above it."
    )
    max_frames: int | None = Field(default=None, ge=1, description="Stop after N frames.")
    threaded: bool | None = Field(
        default=None,
        description="Decode, segment and encode on three threads (None: for files, not for "
        "cameras, whose latency matters more than throughput).",
    )
    models_dir: str | None = Field(default=None, description="Offline verified models folder.")
    interface: dict[str, Any] | None = Field(
        default=None,
        description="Model interface fields (normalization, channel order, output activation, "
        "person channel) on top of the zoo entry's or the graph's.",
    )

    @model_validator(mode="after")
    def _one_source_one_sink(self) -> RunConfig:
        if (self.input is None) == (self.camera is None):
            raise ValueError("give either an input file or --camera N (one of them)")
        if (self.output is None) == (not self.virtual_camera):
            raise ValueError("give either -o OUTPUT or --virtual-camera (one of them)")
        return self

    @property
    def kind(self) -> Literal["file", "camera"]:
        """Whether the source is a file or a camera."""
        return "file" if self.input is not None else "camera"


def file_sink(output: str, fps: float, size: tuple[int, int], audio_from: str | None) -> FrameSink:
    """The writer for ``output``: H.264 with the input's audio (PyAV) for .mp4/.m4v/.mov/.mkv,
    OpenCV's writer for .avi/.webm or when PyAV is not installed."""
    if Path(output).suffix.lower() in CODECS and importlib.util.find_spec("av") is not None:
        return AvFileSink(output, fps, size, audio_from)
    return FileSink(output, fps, size)


def remove_background(
    config: RunConfig,
    progress: Progress | None = None,
    camera_factory: CameraFactory | None = None,
) -> RunSummary:
    """Run the pipeline a `RunConfig` describes, to the end of the input (or Ctrl-C).

    Args:
        config: Source, sink, model and effect.
        progress: Called with (frames done, stage times) every 15 frames.
        camera_factory: Virtual-camera factory (tests pass a fake device).

    Returns:
        Frames in and out, and milliseconds per stage.

    Raises:
        ConfigError: The output is the input file itself.
        VideoError / CameraError / VirtualCameraError: A source or sink that does not open,
            or an output that could not be written completely (the old file is kept).
        TruncatedVideoError: The input broke; the output holds the frames done.
        EdgeoptError: The model cannot be pulled or compiled.
    """
    if config.input is not None and config.output is not None:
        check_distinct(config.input, config.output)
    source: CaptureSource = (
        open_file(config.input)
        if config.input is not None
        else open_camera(config.camera or 0, config.camera_size)
    )
    sink: FrameSink | None = None
    try:
        segmenter = load_segmenter(
            config.model,
            backend=config.backend,
            backend_options={"threads": config.threads} if config.threads else None,
            variant=config.variant,
            options=config.mask,
            models_dir=Path(config.models_dir) if config.models_dir else None,
            optimize=config.optimize,
            interface=config.interface,
        )
        compositor = Compositor(effect_from_args(config.effect, config.background))
        remover = BackgroundRemover(segmenter, compositor, config.budget_ms)
        if config.output is not None:
            sink = file_sink(config.output, source.fps, source.size, config.input)
        else:
            sink = VirtualCameraSink(
                source.size,
                source.fps,
                config.device,
                pace=config.kind == "file",
                camera_factory=camera_factory,
            )
    except BaseException:
        source.close()
        if isinstance(sink, FileSink | AvFileSink):
            sink.discard()
        raise
    threaded = config.threaded if config.threaded is not None else config.kind == "file"
    return run(
        source, sink, remover, max_frames=config.max_frames, progress=progress, threaded=threaded
    )
