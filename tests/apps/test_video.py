"""The video pipeline: frames in == frames out, broken inputs, cameras, the virtual camera, CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeopt.apps.background import (
    CameraError,
    TruncatedVideoError,
    VideoError,
    VirtualCameraError,
)
from edgeopt.apps.background.app import RunConfig, remove_background
from edgeopt.apps.background.portrait_clip import sample_frames, write_sample
from edgeopt.apps.background.remover import MAX_EVERY
from edgeopt.apps.background.video import open_camera
from edgeopt.apps.background.virtualcam import VirtualCameraSink, loopback_devices
from edgeopt.cli.main import app


def _count(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 40-frame 160x120 sample clip (mp4)."""
    return write_sample(tmp_path_factory.mktemp("clip") / "in.mp4", (120, 160), 40 / 30)


def test_sample_clip_is_deterministic_and_moves() -> None:
    a = list(sample_frames((48, 64), 6))
    b = list(sample_frames((48, 64), 6))
    assert len(a) == 6 and all(f.shape == (48, 64, 3) for f in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert np.abs(a[0].astype(int) - a[1]).mean() > 1  # the camera moves


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".avi"])
def test_every_frame_in_comes_out(clip: Path, red_model: Path, tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"out{suffix}"
    summary = remove_background(RunConfig(input=str(clip), output=str(out), model=str(red_model)))
    assert summary.frames_in == summary.frames_out == 40
    assert _count(out) == 40
    first = cv2.VideoCapture(str(out)).read()[1]
    assert first.shape == (120, 160, 3)
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left


def test_frame_skipping_and_latency_budget(clip: Path, red_model: Path, tmp_path: Path) -> None:
    config = RunConfig(
        input=str(clip), output=str(tmp_path / "o.mp4"), model=str(red_model), budget_ms=1e-6
    )
    summary = remove_background(config)
    assert summary.frames_out == 40
    assert summary.model_runs < 40 / (MAX_EVERY / 2)  # over budget: the model ran less often
    assert _count(tmp_path / "o.mp4") == 40


def test_truncated_input_keeps_the_frames_done(clip: Path, red_model: Path, tmp_path: Path) -> None:
    avi = write_sample(tmp_path / "full.avi", (120, 160), 2.0)
    data = avi.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.mp4"
    with pytest.raises(TruncatedVideoError, match=r"ended after \d+ of its 60 frames") as info:
        remove_background(RunConfig(input=str(cut), output=str(out), model=str(red_model)))
    assert 10 < info.value.frames_done < 60
    assert _count(out) == info.value.frames_done  # a valid, playable file of those frames


def test_unreadable_inputs_are_clear_errors(clip: Path, red_model: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[: clip.stat().st_size // 2])  # moov atom lost
    with pytest.raises(VideoError, match="cannot be opened as a video"):
        remove_background(RunConfig(input=str(cut), output=str(tmp_path / "o.mp4")))
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoError, match=r"notes\.mp4"):
        remove_background(RunConfig(input=str(text), output=str(tmp_path / "o.mp4")))
    with pytest.raises(VideoError, match="unknown video container"):
        remove_background(
            RunConfig(input=str(clip), output=str(tmp_path / "o.gif"), model=str(red_model))
        )
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o.gif").exists()


def test_missing_camera_is_a_clear_error() -> None:
    with pytest.raises(CameraError, match=r"camera 57 cannot be opened.*--camera N"):
        open_camera(57)


class FakeCamera:
    """A stand-in for pyvirtualcam.Camera: records what it is sent."""

    instances: ClassVar[list[FakeCamera]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.device = "/dev/video-fake"
        self.frames: list[np.ndarray] = []
        self.closed = False
        FakeCamera.instances.append(self)

    def send(self, frame: np.ndarray) -> None:
        self.frames.append(frame.copy())

    def sleep_until_next_frame(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_virtual_camera_gets_every_frame(clip: Path, red_model: Path) -> None:
    FakeCamera.instances.clear()
    config = RunConfig(input=str(clip), virtual_camera=True, model=str(red_model), effect="mask")
    summary = remove_background(config, camera_factory=FakeCamera)
    (cam,) = FakeCamera.instances
    assert summary.frames_out == len(cam.frames) == 40 and cam.closed
    assert cam.kwargs["width"] == 160 and cam.kwargs["height"] == 120
    assert cam.kwargs["backend"] == "v4l2loopback"
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in cam.frames)


@pytest.mark.skipif(bool(loopback_devices()), reason="a v4l2loopback device exists on this machine")
def test_no_loopback_device_says_how_to_load_it() -> None:
    pytest.importorskip("pyvirtualcam", reason="pyvirtualcam is not installed")
    with pytest.raises(VirtualCameraError, match="modprobe v4l2loopback"):
        VirtualCameraSink((48, 64), 30.0)


@pytest.mark.skipif(bool(loopback_devices()), reason="a v4l2loopback device exists on this machine")
def test_cli_virtual_camera_without_loopback_is_one_line_and_exit_1(
    clip: Path, red_model: Path
) -> None:
    pytest.importorskip("pyvirtualcam", reason="pyvirtualcam is not installed")
    result = CliRunner().invoke(
        app, ["bgremove", str(clip), "--virtual-camera", "--model", str(red_model)]
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "modprobe v4l2loopback" in lines[0], result.output


def test_cli_writes_a_video_and_prints_a_summary(
    clip: Path, red_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.mkv"
    result = CliRunner().invoke(
        app,
        ["bgremove", str(clip), "-o", str(out), "--model", str(red_model), "--effect", "blur:6"],
    )
    assert result.exit_code == 0, result.output
    for stage in ("decode", "pre", "infer", "post", "composite", "encode"):
        assert stage in result.output
    assert "40 frames in, 40 out" in result.output
    assert _count(out) == 40


def test_cli_rejects_two_sources() -> None:
    result = CliRunner().invoke(app, ["bgremove", "x.mp4", "--camera", "0", "-o", "y.mp4"])
    assert result.exit_code == 1
    assert "either an input file or --camera" in result.output


class _Numbered:
    """A source of 200 frames whose pixels carry their index; counts how far ahead it read."""

    name = "numbered"
    expected_frames = 200
    fps = 30.0
    size = (16, 16)

    def __init__(self, sink: list[int]) -> None:
        self.i = 0
        self.sink = sink
        self.ahead = 0

    def read(self) -> np.ndarray | None:
        if self.i == 200:
            return None
        self.ahead = max(self.ahead, self.i - len(self.sink))
        frame = np.full((16, 16, 3), self.i % 256, np.uint8)
        frame[0, 0, 0] = self.i // 256
        self.i += 1
        return frame

    def close(self) -> None:
        pass


class _Recorder:
    def __init__(self, fail_at: int | None = None) -> None:
        self.seen: list[int] = []
        self.fail_at = fail_at

    def write(self, frame: np.ndarray) -> None:
        if self.fail_at is not None and len(self.seen) == self.fail_at:
            raise VideoError("disk full (test)")
        self.seen.append(int(frame[0, 1, 0]) + 256 * int(frame[0, 0, 0]))

    def close(self) -> None:
        pass


def test_pipelined_run_keeps_order_count_and_bounds(red_model: Path) -> None:
    from edgeopt.apps.background.composite import Compositor, parse_effect
    from edgeopt.apps.background.remover import BackgroundRemover
    from edgeopt.apps.background.segmenter import load_segmenter
    from edgeopt.apps.background.video import run

    def remover() -> BackgroundRemover:
        return BackgroundRemover(load_segmenter(str(red_model)), Compositor(parse_effect("none")))

    sink = _Recorder()
    source = _Numbered(sink.seen)
    summary = run(source, sink, remover(), threaded=True)  # type: ignore[arg-type]
    assert sink.seen == list(range(200))  # every frame, in order
    assert summary.frames_in == summary.frames_out == 200
    assert source.ahead <= 10  # bounded queues: the reader never runs far ahead
    assert len(summary.times.samples("latency")) == 200
    failing = _Recorder(fail_at=50)
    with pytest.raises(VideoError, match="disk full"):
        run(_Numbered(failing.seen), failing, remover(), threaded=True)  # type: ignore[arg-type]
    assert len(failing.seen) == 50
