"""Soak: many frames through background removal, memory sampled, frames in == frames out.

Runs ``edgeopt bgremove`` (file to file, the real command in its own process) on a clip that
loops the sample video until ``--frames`` frames, and samples the process's RSS every 2 s.
Prints the RSS after warm-up, at the end, the largest rise, and the frame counts; a leak shows
as a rise that keeps growing with ``--frames``. With ``--gst`` the same clip goes through the
GStreamer element instead (``gst-launch-1.0 filesrc ! decodebin ! videoconvert !
edgeoptbgremove ! x264enc ! mp4mux ! filesink``), the gst-launch process's RSS sampled.

    python benchmarks/soak.py                   # 100,000 frames at 160x120
    python benchmarks/soak.py --frames 20000 --size 320x240 --model mediapipe-selfie
    python benchmarks/soak.py --gst --frames 30000
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import psutil

from edgeopt.apps.background.portrait_clip import sample_frames


def write_clip(path: Path, frames: int, size: tuple[int, int]) -> Path:
    """A clip of ``frames`` frames looping 300 frames of the sample video (mp4v)."""
    loop = list(sample_frames(size, 300))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 30.0, size[::-1])
    for i in range(frames):
        writer.write(loop[i % len(loop)])
    writer.release()
    return path


def _gst_launch(clip: Path, out: Path, model: str, tmp: Path) -> subprocess.Popen[str]:
    """gst-launch-1.0 running the element from ``clip`` to an H.264 ``out``."""
    from edgeopt.apps.background.gst import plugin_env

    exe = shutil.which("gst-launch-1.0")
    if exe is None:
        sys.exit("gst-launch-1.0 is not installed (apt package gstreamer1.0-tools)")
    env = plugin_env()
    env["GST_REGISTRY"] = str(tmp / "registry.bin")
    pipeline = (
        f"filesrc location={clip} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! "
        f"edgeoptbgremove model={model} ! videoconvert ! video/x-raw,format=I420 ! "
        f"x264enc speed-preset=ultrafast ! mp4mux ! filesink location={out}"
    )
    return subprocess.Popen(
        [exe, "-q", *pipeline.split()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def main() -> None:
    """Parse arguments, run the soak, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--size", default="160x120", help="WIDTHxHEIGHT of the clip")
    parser.add_argument("--model", default="mediapipe-selfie")
    parser.add_argument("--interval", type=float, default=2.0, help="RSS sampling period, s")
    parser.add_argument("--gst", action="store_true", help="soak the GStreamer element instead")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "soak.mp4", args.frames, (h, w))
        out = Path(tmp) / "out.mp4"
        if args.gst:
            proc = _gst_launch(clip, out, args.model, Path(tmp))
        else:
            cmd = [sys.executable, "-m", "edgeopt", "bgremove", str(clip), "-o", str(out)]
            proc = subprocess.Popen(
                [*cmd, "--model", args.model],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        ps = psutil.Process(proc.pid)
        samples: list[tuple[float, float]] = []
        start = time.monotonic()
        while proc.poll() is None:
            try:
                samples.append((time.monotonic() - start, ps.memory_info().rss / 2**20))
            except psutil.NoSuchProcess:
                break
            time.sleep(args.interval)
        stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            sys.exit(
                f"{'gst-launch' if args.gst else 'bgremove'} failed ({proc.returncode}): "
                f"{stderr.strip()[-2000:]}"
            )
        counts = re.search(r"(\d+) frames in, (\d+) out", stdout)
        cap = cv2.VideoCapture(str(out))
        written = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
    warm = [r for t, r in samples if t >= 10.0] or [r for _, r in samples]
    said = counts.group(0) if counts else "?"
    print(f"frames: {args.frames} in the clip; {'gst-launch' if args.gst else 'bgremove'}: {said}")
    print(f"output container holds {written} frames")
    print(f"RSS samples: {len(samples)} over {samples[-1][0] if samples else 0:.0f} s")
    if warm:
        print(
            f"RSS after 10 s warm-up: {warm[0]:.1f} MB; end: {warm[-1]:.1f} MB; "
            f"max: {max(warm):.1f} MB; rise after warm-up: {max(warm) - warm[0]:.1f} MB"
        )


if __name__ == "__main__":
    main()
