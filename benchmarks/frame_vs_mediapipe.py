"""The whole frame, side by side: edgeopt's background removal vs MediaPipe's own Python solution.

Both pipelines blur the background of the same frames (the sample clip, a moving camera over
real portraits) at 640x480 and 1280x720, each in its own process, in alternating rounds:

- **MediaPipe**: ``mediapipe==0.10.14``'s ``solutions.selfie_segmentation`` (model 0, the
  general model, or with ``--landscape`` model 1, the landscape one) and the blur composite
  its documentation shows (``np.where(condition, frame, GaussianBlur(frame))``), in its own
  venv (created here on first use: mediapipe pins its own numpy and protobuf, so it stays out
  of edgeopt's environment);
- **edgeopt**: `BackgroundRemover` with the same zoo model, the exact ort_layout rewrite, the
  app's default threads (its two threads spinning during a run, its one-thread copy while
  other processes hold a core), halo-free blur.

Prints p50/p99 ms per frame and process CPU ms per frame for each, the ratio of p50s, and the
share of edgeopt's inferences that ran on one thread.
``--load`` keeps one core busy with a spin loop in a third process during the measurement.

    python benchmarks/frame_vs_mediapipe.py [--frames 300] [--rounds 3] [--load] [--landscape]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import edgeopt
from edgeopt.bench.report import markdown_table

MEDIAPIPE = "mediapipe==0.10.14"

WORKER = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    kind, clip, frames_n, selection = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    frames = list(np.load(clip)["frames"][:frames_n])
    if kind == "mediapipe":
        import cv2
        import mediapipe as mp
        seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=selection)
        def step(frame):
            result = seg.process(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            condition = np.stack((result.segmentation_mask,) * 3, axis=-1) > 0.1
            return np.where(condition, frame, cv2.GaussianBlur(frame, (55, 55), 0))
    else:
        from edgeopt.apps.background.composite import Compositor, parse_effect
        from edgeopt.apps.background.remover import BackgroundRemover
        from edgeopt.apps.background.segmenter import load_segmenter
        name = "mediapipe-selfie-landscape" if selection else "mediapipe-selfie"
        remover = BackgroundRemover(
            load_segmenter(name, optimize=True),
            Compositor(parse_effect("blur")),
        )
        out = np.empty_like(frames[0])
        def step(frame):
            return remover.process(frame, "BGR", out)
    for frame in frames[:20]:
        step(frame)
    times = []
    cpu0 = time.process_time()
    for frame in frames:
        t = time.perf_counter()
        step(frame)
        times.append((time.perf_counter() - t) * 1e3)
    cpu = (time.process_time() - cpu0) * 1e3 / len(frames)
    one = 0.0
    if kind == "edgeopt":
        one = remover.segmenter.fallback_runs / max(1, remover.segmenter.model_runs)
    print(json.dumps({"times": times, "cpu_ms": cpu, "one_thread": one}))
    """
)


def mediapipe_python() -> Path:
    """A venv with mediapipe 0.10.14 (made once, under edgeopt's cache folder)."""
    folder = edgeopt.cache_dir() / "bench-mediapipe-venv"
    python = folder / "bin" / "python"
    if not python.is_file():
        venv.create(folder, with_pip=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", MEDIAPIPE], check=True, timeout=1800
        )
    return python


def _spin() -> None:
    while True:
        pass


def main() -> None:
    """Measure both pipelines in alternating rounds and print the table."""
    import numpy as np

    from edgeopt.apps.background.portrait_clip import sample_frames

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--load", action="store_true", help="keep one core busy meanwhile")
    parser.add_argument("--landscape", action="store_true", help="both on the landscape model")
    args = parser.parse_args()
    pythons = {"mediapipe": mediapipe_python(), "edgeopt": Path(sys.executable)}
    spinner = mp.get_context("spawn").Process(target=_spin, daemon=True) if args.load else None
    if spinner is not None:
        spinner.start()
    rows = []
    selection = "1" if args.landscape else "0"
    try:
        for size in ((480, 640), (720, 1280)):
            clip = edgeopt.cache_dir() / f"bench-frames-{size[1]}x{size[0]}.npz"
            if not clip.is_file():
                clip.parent.mkdir(parents=True, exist_ok=True)
                np.savez(clip, frames=np.stack(list(sample_frames(size, args.frames))))
            got: dict[str, dict[str, list[float]]] = {
                k: {"times": [], "cpu": [], "one": []} for k in pythons
            }
            for _ in range(args.rounds):
                for kind, python in pythons.items():
                    env = {**os.environ, "OMP_NUM_THREADS": "2"}
                    proc = subprocess.run(
                        [str(python), "-c", WORKER, kind, str(clip), str(args.frames), selection],
                        capture_output=True,
                        text=True,
                        env=env,
                        check=False,
                    )
                    if proc.returncode != 0:
                        sys.exit(f"{kind} failed: {proc.stderr.strip().splitlines()[-1]}")
                    data = json.loads(proc.stdout.strip().splitlines()[-1])
                    got[kind]["times"] += data["times"]
                    got[kind]["cpu"].append(data["cpu_ms"])
                    got[kind]["one"].append(data["one_thread"])
            p50 = {}
            for kind, d in got.items():
                lo, hi = np.percentile(d["times"], [50, 99])
                p50[kind] = lo
                cpu = float(np.mean(d["cpu"]))
                one = f"{np.mean(d['one']):.0%}" if kind == "edgeopt" else ""
                size_text = f"{size[1]}x{size[0]}"
                rows.append([kind, size_text, f"{lo:.2f}", f"{hi:.2f}", f"{cpu:.1f}", one])
            ratio = p50["mediapipe"] / p50["edgeopt"]
            rows.append(["ratio (MediaPipe / edgeopt p50)", "", f"{ratio:.1f}x", "", "", ""])
    finally:
        if spinner is not None:
            spinner.kill()
    load = "one core kept busy by a spin loop" if args.load else "no other load"
    model = "landscape" if args.landscape else "general"
    print(f"Frame time, {model} model, {args.frames} frames x {args.rounds} rounds, {load}:")
    header = ["pipeline", "size", "p50 ms", "p99 ms", "CPU ms/frame", "infer on 1 thread"]
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
