"""The video pipeline: read a file or a camera, remove the background, write a file or a camera.

Sources and sinks are OpenCV's ``VideoCapture`` / ``VideoWriter`` (its bundled FFmpeg reads
and writes mp4, mkv, webm and avi); the virtual camera sink lives in `virtualcam`. The loop is
plain: decode, `BackgroundRemover.process`, encode, each stage timed. Its guarantees:

- every frame in comes out: the summary counts frames read and frames written;
- an output file is written beside its target and renamed into place when closed, so it is
  either absent or a complete, playable file;
- an input that breaks or ends before the frame count its container declares (a truncated
  download, a disk error) still gets its output closed and renamed — a valid video of the
  frames done so far — and then a `TruncatedVideoError` saying how far it got;
- a camera that does not open, or a file that is not a video, is one `VideoError` naming it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edgeopt._fs import temporary_path
from edgeopt.apps.background.encode import publish, video_frame_count
from edgeopt.apps.background.errors import CameraError, TruncatedVideoError, VideoError
from edgeopt.apps.background.remover import BackgroundRemover
from edgeopt.apps.background.segmenter import StageTimes
from edgeopt.apps.background.threaded import threaded_loop

__all__ = [
    "CaptureSource",
    "FileSink",
    "FrameSink",
    "RunSummary",
    "open_camera",
    "open_file",
    "run",
]

# FFmpeg's own log lines ("moov atom not found", "overread 8") would come on top of the one
# clear error this module raises; FFmpeg reads the level when OpenCV first opens a video.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")

# OpenCV's FFmpeg encoders by container; all ship in the opencv-python wheels.
FOURCC = {
    ".mp4": "mp4v",
    ".m4v": "mp4v",
    ".mov": "mp4v",
    ".mkv": "mp4v",
    ".avi": "MJPG",
    ".webm": "VP80",
}
STAGES = ("decode", "pre", "infer", "post", "composite", "encode", "frame")
"""Stages the pipeline times, in order; ``frame`` is pre + infer + post + composite."""


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Silence OpenCV's own warnings (we raise one clear error instead)."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging.setLogLevel(level)


class CaptureSource:
    """Frames from an OpenCV capture (file or camera), BGR uint8.

    Attributes:
        name: What was opened, for messages.
        fps: Frames per second the source declares (30 when it declares none).
        size: (height, width) of its frames.
        expected_frames: Frames the container declares; None for cameras and streams.
    """

    def __init__(self, capture: cv2.VideoCapture, name: str, is_camera: bool) -> None:
        self._cap = capture
        self.name = name
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 1.0 <= fps <= 240.0 else 30.0
        self._first: np.ndarray | None = None
        with _quiet_opencv():
            ok, frame = capture.read()
        if not ok or frame is None:
            capture.release()
            raise VideoError(f"{name}: no frame could be read (empty, corrupt or not a video)")
        self._first = frame
        self.size = (int(frame.shape[0]), int(frame.shape[1]))
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.expected_frames = None if is_camera or count <= 0 else count

    def read(self) -> np.ndarray | None:
        """The next frame, or None at the end of the input."""
        if self._first is not None:
            frame, self._first = self._first, None
            return frame
        with _quiet_opencv():
            ok, frame = self._cap.read()
        return frame if ok else None

    def close(self) -> None:
        """Release the capture."""
        self._cap.release()


def open_file(path: str | os.PathLike[str]) -> CaptureSource:
    """Open a video file for reading.

    Raises:
        VideoError: Missing, unreadable, or not a video (e.g. truncated before its index).
    """
    p = Path(path)
    if not p.is_file():
        raise VideoError(f"{p}: no such video file")
    with _quiet_opencv():
        cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        raise VideoError(
            f"{p}: cannot be opened as a video (not a video, or truncated before its header "
            "or index); re-encode or re-download it"
        )
    source = CaptureSource(cap, str(p), is_camera=False)
    # OpenCV counts duration x rate: an audio track longer than the video would read as a
    # truncated video. The video stream's own count, where the container has one, is right.
    own = video_frame_count(p)
    if own is not None:
        source.expected_frames = own
    return source


def open_camera(index: int, size: tuple[int, int] | None = None) -> CaptureSource:
    """Open camera ``index`` (``/dev/video<index>`` on Linux).

    Args:
        index: Camera number.
        size: Requested (height, width); the camera may choose another.

    Raises:
        CameraError: No such camera, or it is busy or not readable.
    """
    with _quiet_opencv():
        cap = cv2.VideoCapture(index)
        if cap.isOpened() and size is not None:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size[0])
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, size[1])
    if not cap.isOpened():
        raise CameraError(
            f"camera {index} cannot be opened (no /dev/video{index}, or busy, or no permission): "
            "list cameras with `v4l2-ctl --list-devices` and pass --camera N"
        )
    try:
        return CaptureSource(cap, f"camera {index}", is_camera=True)
    except VideoError as e:
        raise CameraError(f"camera {index} opened but gives no frames: {e}") from e


class FrameSink(Protocol):
    """Where processed frames go: a file, a virtual camera, a test double."""

    def write(self, frame: np.ndarray) -> None:
        """Send one BGR uint8 frame."""
        ...

    def close(self) -> None:
        """Finish (flush, finalize the file, release the device)."""
        ...


class FileSink:
    """Writes BGR frames to a video file; the file appears only when closed, complete.

    Args:
        path: Output file; the container follows the suffix (.mp4 .mkv .webm .avi .mov).
        fps: Frames per second.
        size: (height, width) of every frame.

    Raises:
        VideoError: Unknown suffix, or OpenCV cannot open an encoder for it.
    """

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in FOURCC:
            raise VideoError(
                f"{self.path}: unknown video container {suffix!r}; use one of {sorted(FOURCC)}"
            )
        self._tmp = temporary_path(self.path, suffix)
        self.size = size
        self.frames = 0
        with _quiet_opencv():
            self._writer = cv2.VideoWriter(
                str(self._tmp), cv2.VideoWriter.fourcc(*FOURCC[suffix]), fps, (size[1], size[0])
            )
        if not self._writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            raise VideoError(f"{self.path}: OpenCV cannot open a {FOURCC[suffix]} encoder for it")
        self._closed = False

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame (BGR, or BGRA whose alpha is dropped).

        Raises:
            VideoError: A frame of the wrong size.
        """
        if frame.shape[:2] != self.size:
            raise VideoError(
                f"{self.path}: frame of size {frame.shape[:2]} in a video of size {self.size}"
            )
        if frame.ndim == 3 and frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        """Finalize the container, check it, and rename it onto the target path (idempotent).

        The encoder reports no error per frame (a full disk shows only as FFmpeg warnings),
        so the finished file is opened again and must hold every frame written; only then
        does it replace the target.

        Raises:
            VideoError: The file could not be written completely (disk full, I/O error);
                the target keeps its previous content and the temporary file is removed.
        """
        if self._closed:
            return
        self._closed = True
        self._writer.release()
        if not self.frames:
            self._tmp.unlink(missing_ok=True)
            return
        publish(self._tmp, self.path, self.frames, _frames_in(self._tmp, self.frames))

    def discard(self) -> None:
        """Drop the output (used when nothing useful was written)."""
        self._closed = True
        self._writer.release()
        self._tmp.unlink(missing_ok=True)


def _frames_in(path: Path, expected: int) -> int:
    """How many frames of ``path`` can be read back: the container's count, checked by a seek.

    The count comes from the container's index (no full decode); an mp4 whose index was never
    written (disk full at the end) does not open at all, and the last frame must decode.
    """
    with _quiet_opencv():
        cap = cv2.VideoCapture(str(path))
        try:
            if not cap.isOpened():
                return 0
            count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            if count >= expected:
                cap.set(cv2.CAP_PROP_POS_FRAMES, expected - 1)
                return expected if cap.read()[0] else 0
            if count > 0:
                return count
            n = 0  # no count in the container: decode it all
            while cap.grab():
                n += 1
            return n
        finally:
            cap.release()


@dataclass(frozen=True)
class RunSummary:
    """What a pipeline run did.

    Attributes:
        source: The input's name.
        frames_in: Frames read.
        frames_out: Frames written.
        seconds: Wall time of the loop.
        model_runs: Frames the model ran on (fewer than frames_in with frame skipping).
        times: Milliseconds per stage (decode, pre, infer, post, composite, encode, frame).
        interrupted: ``"SIGINT"`` (Ctrl-C: a camera run ends that way) or ``"SIGTERM"`` when
            stopped by a signal, the output closed first; None when the input ended.
        cpu_seconds: Process CPU time (user + system, every thread) spent in the loop.
        single_thread_runs: Model runs on the one-thread copy, while other processes held a
            core (`Segmenter.fallback`).
    """

    source: str
    frames_in: int
    frames_out: int
    seconds: float
    model_runs: int
    times: StageTimes
    interrupted: str | None = None
    cpu_seconds: float = 0.0
    single_thread_runs: int = 0

    @property
    def cpu_ms_per_frame(self) -> float:
        """Process CPU time (all threads, user + system) per frame written, in ms: what a
        video-call user feels as load."""
        return 1e3 * self.cpu_seconds / self.frames_out if self.frames_out else 0.0

    @property
    def fps(self) -> float:
        """Frames written per second of wall time."""
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[int, StageTimes], None]


@contextlib.contextmanager
def _stop_between_frames() -> Iterator[list[str]]:
    """SIGINT / SIGTERM end the loop after the frame in hand, so frames in == frames out.

    Yields a list that receives the signal's name. A second signal raises KeyboardInterrupt
    at once (a source stuck in a read). Outside the main thread signals are left alone.
    """
    stop: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if stop:
            raise KeyboardInterrupt
        stop.append("SIGTERM" if signum == signal.SIGTERM else "SIGINT")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run(
    source: CaptureSource,
    sink: FrameSink,
    remover: BackgroundRemover,
    *,
    max_frames: int | None = None,
    progress: Progress | None = None,
    progress_every: int = 15,
    threaded: bool = False,
) -> RunSummary:
    """Process every frame of ``source`` into ``sink``; closes both.

    Args:
        source: Frames in.
        sink: Frames out.
        remover: Segmentation and compositing.
        max_frames: Stop after this many frames (None: the whole input).
        progress: Called with (frames done, stage times) every ``progress_every`` frames.
        progress_every: How often to call ``progress``.
        threaded: Decode, segment + composite and encode on three threads (`threaded_loop`):
            throughput set by the slowest stage; frame order and count kept.

    Returns:
        Counts and per-stage timings.

    Raises:
        TruncatedVideoError: The input ended before its declared frame count; the sink was
            closed first, so the output holds every frame done.
        VideoError: The sink failed.
    """
    times = remover.times
    frames_in = frames_out = 0
    interrupted: str | None = None
    start = time.perf_counter()
    cpu0 = time.process_time()
    out: np.ndarray | None = None
    try:
        with _stop_between_frames() as stop:
            if threaded:
                frames_in, frames_out = threaded_loop(
                    source.read,
                    sink.write,
                    remover,
                    stop,
                    max_frames,
                    (lambda n: progress(n, times)) if progress is not None else None,
                )
            while not threaded and (max_frames is None or frames_in < max_frames) and not stop:
                t0 = time.perf_counter()
                frame = source.read()
                t1 = time.perf_counter()
                if frame is None:
                    break
                times.add("decode", (t1 - t0) * 1e3)
                frames_in += 1
                if out is None or out.shape != frame.shape:
                    out = np.empty_like(frame)  # reused: sinks encode or copy before returning
                remover.process(frame, "BGR", out)
                t2 = time.perf_counter()
                sink.write(out)
                times.add("encode", (time.perf_counter() - t2) * 1e3)
                frames_out += 1
                if progress is not None and frames_out % progress_every == 0:
                    progress(frames_out, times)
            interrupted = stop[0] if stop else None
    except KeyboardInterrupt as e:  # a second signal, or one outside the main thread's loop
        interrupted = "SIGTERM" if type(e).__name__ == "Terminated" else "SIGINT"
    finally:
        source.close()
        sink.close()
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu0
    expected = source.expected_frames
    if (
        not interrupted
        and max_frames is None
        and expected is not None
        and frames_in < expected - max(1, expected // 100)
    ):
        raise TruncatedVideoError(
            f"{source.name}: the input ended after {frames_in} of its {expected} frames "
            f"(truncated or corrupt); the {frames_out} frames done were written",
            frames_done=frames_out,
            frames_expected=expected,
        )
    return RunSummary(
        source=source.name,
        frames_in=frames_in,
        frames_out=frames_out,
        seconds=seconds,
        model_runs=remover.segmenter.model_runs,
        times=times,
        interrupted=interrupted,
        cpu_seconds=cpu_seconds,
        single_thread_runs=remover.segmenter.fallback_runs,
    )
