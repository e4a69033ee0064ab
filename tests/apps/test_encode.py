"""Files people can use: H.264, the input's audio carried over unchanged, odd sizes kept."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeopt.apps.background.portrait_clip import sample_frames
from edgeopt.cli.main import app

av = pytest.importorskip("av", reason="PyAV writes H.264 with audio: pip install av")


def _clip(path: Path, size: tuple[int, int], frames: int, audio_s: float | None) -> Path:
    """A clip with H.264 video and, when ``audio_s`` is given, that much AAC audio (a tone)."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=30)
        video.width, video.height = size[1], size[0]
        video.pix_fmt = "yuv420p" if size[0] % 2 == 0 == size[1] % 2 else "yuv444p"
        audio = None
        if audio_s is not None:
            audio = out.add_stream("aac", rate=48000)
            audio.layout = "mono"
        for frame in sample_frames(size, frames):
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="bgr24")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio is not None:
            t = np.arange(int(48000 * audio_s)) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, tone.size, 1024):
                chunk = tone[start : start + 1024][None]
                frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                frame.sample_rate = 48000
                frame.pts = start
                frame.time_base = Fraction(1, 48000)
                for packet in audio.encode(frame):
                    out.mux(packet)
            for packet in audio.encode(None):
                out.mux(packet)
    return path


def _audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return []
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def _video(path: Path) -> tuple[str, int, int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.name, stream.width, stream.height, frames


def _run(clip: Path, out: Path, red_model: Path) -> str:
    result = CliRunner().invoke(
        app, ["bgremove", str(clip), "-o", str(out), "--model", str(red_model)]
    )
    assert result.exit_code == 0, result.output
    return str(result.output)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_h264_out_with_the_audio_track_carried_over_unchanged(
    tmp_path: Path, red_model: Path, suffix: str
) -> None:
    clip = _clip(tmp_path / f"in{suffix}", (120, 160), 30, audio_s=1.0)
    out = tmp_path / f"out{suffix}"
    _run(clip, out, red_model)
    assert _video(out) == ("h264", 160, 120, 30)
    want = _audio_packets(clip)
    assert want and _audio_packets(out) == want  # the same AAC packets, byte for byte


def test_odd_sizes_are_kept_exactly(tmp_path: Path, red_model: Path) -> None:
    clip = _clip(tmp_path / "odd.mp4", (479, 641), 6, audio_s=None)
    out = tmp_path / "out.mp4"
    _run(clip, out, red_model)
    assert _video(out)[1:] == (641, 479, 6)
    assert _audio_packets(out) == []  # no audio in, none out


def test_audio_longer_than_the_video_is_not_an_error(tmp_path: Path, red_model: Path) -> None:
    clip = _clip(tmp_path / "long-audio.mp4", (120, 160), 15, audio_s=2.0)  # 0.5 s of video
    out = tmp_path / "out.mp4"
    text = _run(clip, out, red_model)
    assert "15 frames in, 15 out" in text.replace("\n", " ")
    assert _audio_packets(out) == _audio_packets(clip)
