"""Video files people can use: H.264 (or VP9 for .webm) with the input's audio carried over.

Written with PyAV (FFmpeg's libraries, libx264 included in its wheels): OpenCV's writer only
offers MPEG-4 Part 2 and drops audio. Frames are encoded as they come; when the output is
closed, the input's first audio stream is copied packet by packet, unchanged (no re-encode),
into the same container. Odd frame sizes are kept exactly (4:4:4 chroma then, since 4:2:0 needs
even sizes). Like `FileSink`, the file is written beside its target and renamed into place
only once it holds every frame (checked by reading it back).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt._fs import commit, temporary_path
from edgeopt.apps.background.errors import VideoError

__all__ = ["CODECS", "AvFileSink", "publish", "video_frame_count"]

_HINT = (
    "; free some disk space or write elsewhere if the disk is full; the previous file, if any, "
    "was kept"
)
CODECS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264"}
"""Containers the PyAV writer serves, and their video codec (others use OpenCV's writer)."""


def _av() -> Any:
    import av

    return av


def video_frame_count(path: str | os.PathLike[str]) -> int | None:
    """Frames in a file's first video stream: the container's count, or its packets counted.

    Unlike OpenCV's count, which is the duration times the rate, this is the video stream's
    own: a file whose audio outlasts its video is not mistaken for a truncated one.
    """
    try:
        av = _av()
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            frames = int(stream.frames or 0)
            if frames:
                return frames
            # Matroska and WebM keep no count: count the stream's packets (no decoding).
            return sum(1 for p in container.demux(stream) if p.size) or None
    except Exception:  # PyAV missing, or a file FFmpeg cannot parse: no count then
        return None


def publish(tmp: Path, target: Path, frames: int, readable: int) -> None:
    """Rename a finished video onto ``target`` if every frame written can be read back.

    Raises:
        VideoError: Fewer frames readable than written (a full disk, an I/O error): the
            temporary is removed and ``target`` keeps its previous content.
    """
    if readable < frames:
        tmp.unlink(missing_ok=True)
        free = shutil.disk_usage(target.parent).free // (1 << 20)
        raise VideoError(
            f"{target}: writing the video failed ({readable} of {frames} frames "
            f"readable; {free} MB free there): free some disk space or write elsewhere; "
            "the previous file, if any, was kept"
        )
    try:
        commit(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


class AvFileSink:
    """Writes BGR frames as H.264 into ``path``, then adds ``audio_from``'s audio track.

    Args:
        path: Output file (.mp4 .m4v .mov .mkv).
        fps: Frames per second.
        size: (height, width) of every frame.
        audio_from: The input file whose first audio stream is copied (None: no audio).

    Raises:
        VideoError: PyAV cannot open the container or the encoder.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        size: tuple[int, int],
        audio_from: str | os.PathLike[str] | None = None,
    ) -> None:
        av = _av()
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        self.size = size
        self.frames = 0
        self._tmp = temporary_path(self.path, suffix)
        h, w = size
        self._pix = "yuv420p" if h % 2 == 0 and w % 2 == 0 else "yuv444p"
        try:
            self._out = av.open(str(self._tmp), mode="w")
            rate = Fraction(fps).limit_denominator(1001)
            self._stream = self._out.add_stream(CODECS[suffix], rate=rate)
            self._stream.width, self._stream.height = w, h
            self._stream.pix_fmt = self._pix
            self._stream.options = {"preset": "veryfast", "crf": "20"}
            # The audio stream must exist before the first packet is written (the header).
            self._source, self._audio_in, self._audio_out = self._audio_stream(audio_from)
        except Exception as e:
            self._tmp.unlink(missing_ok=True)
            raise VideoError(f"{self.path}: cannot open an H.264 writer for it: {e}") from e
        self._closed = False

    def write(self, frame: np.ndarray) -> None:
        """Encode one frame (BGR, or BGRA whose alpha is dropped).

        Raises:
            VideoError: A frame of the wrong size, or the encoder failed (disk full, ...).
        """
        if frame.shape[:2] != self.size:
            raise VideoError(
                f"{self.path}: frame of size {frame.shape[:2]} in a video of size {self.size}"
            )
        av = _av()
        image = np.ascontiguousarray(frame[..., :3])
        try:
            video = av.VideoFrame.from_ndarray(image, format="bgr24")
            for packet in self._stream.encode(video):
                self._out.mux(packet)
        except Exception as e:
            raise VideoError(f"{self.path}: writing the video failed ({e}){_HINT}") from e
        self.frames += 1

    def _audio_stream(self, audio_from: str | os.PathLike[str] | None) -> tuple[Any, Any, Any]:
        """(input container, its audio stream, our copy of it), or Nones when there is none."""
        if audio_from is None:
            return None, None, None
        av = _av()
        try:
            source = av.open(str(audio_from))
        except Exception:
            return None, None, None  # a camera or an unreadable input has no audio to carry
        if not source.streams.audio:
            source.close()
            return None, None, None
        inp = source.streams.audio[0]
        try:
            out = self._out.add_stream_from_template(inp)
        except Exception:
            source.close()
            return None, None, None  # a codec this container cannot hold: the video is silent
        return source, inp, out

    def _copy_audio(self) -> None:
        """Mux the input's audio packets, unchanged, into our audio stream."""
        if self._source is None:
            return
        with self._source:
            for packet in self._source.demux(self._audio_in):
                if packet.dts is None:
                    continue
                packet.stream = self._audio_out
                self._out.mux(packet)

    def close(self) -> None:
        """Flush the encoder, add the audio, check the file and rename it into place.

        Raises:
            VideoError: The file could not be written completely; the target is untouched.
        """
        if self._closed:
            return
        self._closed = True
        try:
            for packet in self._stream.encode(None):
                self._out.mux(packet)
            self._copy_audio()
            self._out.close()
        except Exception as e:
            self._tmp.unlink(missing_ok=True)
            raise VideoError(f"{self.path}: writing the video failed ({e}){_HINT}") from e
        if not self.frames:
            self._tmp.unlink(missing_ok=True)
            return
        publish(self._tmp, self.path, self.frames, video_frame_count(self._tmp) or 0)

    def discard(self) -> None:
        """Drop the output (used when nothing useful was written)."""
        self._closed = True
        with contextlib.suppress(Exception):  # closing a half-written file may fail: drop it
            self._out.close()
        if self._source is not None:
            self._source.close()
        self._tmp.unlink(missing_ok=True)
