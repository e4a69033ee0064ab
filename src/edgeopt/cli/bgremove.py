"""``edgeopt bgremove``: blur, replace or remove the background of a video, a camera, live.

Reads a file or a camera, writes a file or a virtual camera (v4l2loopback), shows a live
progress line (fps and p50/p99 ms per stage: decode, pre, infer, post, composite, encode) and
ends with a summary table. The work is `edgeopt.apps.background.app.remove_background`.
"""

from __future__ import annotations

from pathlib import Path

import typer
from pydantic import ValidationError
from rich.live import Live
from rich.text import Text

from edgeopt.apps.background.segmenter import SegmenterOptions, StageTimes, option_help
from edgeopt.cli import _interface
from edgeopt.cli._grammar import DURATION, parse_duration
from edgeopt.cli._output import console, print_table
from edgeopt.errors import ConfigError, describe_validation

__all__ = ["bgremove"]

_DEFAULT = {name: f.default for name, f in SegmenterOptions.model_fields.items()}
"""The mask options' defaults, help and ranges come from `SegmenterOptions` (as the GStreamer
element's do)."""

_STAGES = ("decode", "pre", "infer", "post", "composite", "encode", "frame")


def _size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as e:
        raise ConfigError(f"--size {text!r}: use WIDTHxHEIGHT, e.g. 1280x720") from e
    return (h, w)


def _line(frames: int, times: StageTimes, fps: float) -> str:
    parts = [f"{frames} frames", f"{fps:5.1f} fps"]
    for stage in _STAGES[:-1]:
        p50, p99 = times.percentiles(stage, last=120)
        if p50 == p50:  # not NaN: the stage ran
            parts.append(f"{stage} {p50:.1f}/{p99:.1f}")
    return " | ".join(parts) + " ms p50/p99"


def bgremove(
    input: Path | None = typer.Argument(None, help="Input video file (or use --camera)."),
    camera: int | None = typer.Option(None, "--camera", "-c", help="Camera index (/dev/videoN)."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Output video (.mp4 .mkv ...)."
    ),
    virtual_camera: bool = typer.Option(
        False, "--virtual-camera", help="Send frames to a v4l2loopback virtual camera."
    ),
    device: str | None = typer.Option(None, "--device", help="Loopback device (/dev/videoN)."),
    effect: str = typer.Option(
        "blur", "--effect", "-e", help="blur[:SIGMA] | replace:IMG_OR_VIDEO | remove[:COLOR] | mask"
    ),
    model: str = typer.Option("mediapipe-selfie", "--model", "-m", help="Zoo name or .onnx."),
    backend: str = typer.Option("onnxruntime", "--backend", "-b", help="Backend."),
    optimize: bool = typer.Option(
        True, "--optimize/--no-optimize", help="ORT: run the zoo model's exact ort_layout rewrite."
    ),
    variant: Path | None = typer.Option(
        None, "--variant", help="Optimized .onnx of the zoo model to run instead."
    ),
    threads: int | None = typer.Option(
        None,
        "--threads",
        "-t",
        min=1,
        help="Inference threads (default: every core, and one while other processes hold a core).",
    ),
    every: int = typer.Option(_DEFAULT["every"], "--every", help=option_help("every")),
    similar: float = typer.Option(
        _DEFAULT["similar"], "--skip-similar", help=option_help("similar")
    ),
    frame_budget: str | None = typer.Option(
        None,
        "--frame-budget",
        metavar=DURATION,
        help="Per-frame budget, e.g. 33ms (a bare number is ms): run the model less often "
        "above it.",
    ),
    smoothing: float = typer.Option(
        _DEFAULT["smoothing"], "--smoothing", help=option_help("smoothing")
    ),
    feather: float = typer.Option(_DEFAULT["feather"], "--feather", help=option_help("feather")),
    threshold: float | None = typer.Option(
        _DEFAULT["threshold"], "--threshold", help=option_help("threshold")
    ),
    min_area: float = typer.Option(
        _DEFAULT["min_area"], "--min-area", help=option_help("min_area")
    ),
    refine: str = typer.Option(_DEFAULT["refine"], "--refine", help=option_help("refine")),
    size: str | None = typer.Option(None, "--size", help="Camera size WIDTHxHEIGHT."),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Stop after N."),
    pipelined: bool | None = typer.Option(
        None,
        "--pipelined/--serial",
        help="Decode, segment and encode on three threads (default: for files, not cameras).",
    ),
    card: Path | None = _interface.CARD,
    input_mean: str | None = _interface.MEAN,
    input_std: str | None = _interface.STD,
    input_order: str | None = _interface.ORDER,
    output_activation: str | None = _interface.ACTIVATION,
    person_channel: int | None = _interface.PERSON,
) -> None:
    """Remove, blur or replace the background behind people in a video or a camera stream."""
    from edgeopt.apps.background.app import RunConfig, remove_background

    try:
        mask = SegmenterOptions(
            smoothing=smoothing,
            feather=feather,
            threshold=threshold,
            every=every,
            similar=similar,
            min_area=min_area,
            refine=refine,  # type: ignore[arg-type]  # pydantic checks the value
        )
        config = RunConfig(
            input=str(input) if input else None,
            camera=camera,
            camera_size=_size(size),
            output=str(output) if output else None,
            virtual_camera=virtual_camera,
            device=device,
            effect=effect,
            model=model,
            backend=backend,
            variant=str(variant) if variant else None,
            optimize=optimize,
            threads=threads,
            mask=mask,
            budget_ms=parse_duration(frame_budget, "ms") * 1e3 if frame_budget else None,
            max_frames=max_frames,
            threaded=pipelined,
            interface=_interface.overrides(
                card, input_mean, input_std, input_order, output_activation, person_channel
            ),
        )
    except ValidationError as e:
        problems = describe_validation(e, lambda loc: str(loc[-1]) if loc else "")
        raise ConfigError(f"bgremove: {problems}") from e

    import time

    start = time.perf_counter()
    with Live(Text("starting..."), console=console, transient=True, auto_refresh=False) as live:

        def progress(frames: int, times: StageTimes) -> None:
            fps = frames / max(time.perf_counter() - start, 1e-9)
            live.update(Text(_line(frames, times, fps)), refresh=True)

        summary = remove_background(config, progress)
    rows = []
    for stage in _STAGES:
        values = summary.times.samples(stage)
        if values:
            p50, p99 = summary.times.percentiles(stage)
            rows.append((stage, f"{p50:.2f}", f"{p99:.2f}", f"{sum(values) / len(values):.2f}"))
    print_table(f"{summary.source}: ms per frame", ("stage", "p50", "p99", "mean"), rows)
    where = str(output) if output else "the virtual camera"
    stopped = " (stopped by a signal)" if summary.interrupted else ""
    reused = 1 - summary.model_runs / summary.frames_in if summary.frames_in else 0.0
    single = ""
    if summary.single_thread_runs:
        single = f", {summary.single_thread_runs} on one thread while other processes held a core"
    console.print(
        f"{summary.frames_in} frames in, {summary.frames_out} out to {where}{stopped}; "
        f"model ran on {summary.model_runs} ({reused:.0%} of frames reused a mask{single}); "
        f"{summary.seconds:.1f} s, {summary.fps:.1f} fps, {summary.cpu_ms_per_frame:.1f} ms CPU "
        "per frame"
    )
    if summary.interrupted:  # the output holds every frame done; the exit code says why
        raise typer.Exit(143 if summary.interrupted == "SIGTERM" else 130)
