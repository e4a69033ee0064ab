"""What the similarity skip (``bgremove --skip-similar T``) saves, and what it costs in mask IoU.

Segments two 720p clips with the zoo model (ort_layout, 2 threads) once on every frame and once
per threshold T, and compares each frame's mask with the every-frame one (IoU at 0.5):

- the sample clip: real portraits under a camera that never stops moving;
- still, then moving: a video call's still camera (one portrait plus sensor noise, sigma 2)
  for half the frames, then the sample clip.

Prints model runs, the reuse rate, IoU mean/min and CPU ms per frame (segmentation only).

    python benchmarks/similar_skip.py [--frames 300] [--thresholds 0.5 1 2 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from edgeopt.apps.background import SegmenterOptions, load_segmenter
from edgeopt.apps.background.portrait_clip import sample_frames
from edgeopt.bench.report import markdown_table


def _masks(frames: list[np.ndarray], threshold: float) -> tuple[list[np.ndarray], int, float]:
    """Masks of every frame, model runs, and CPU ms per frame."""
    seg = load_segmenter(
        "mediapipe-selfie",
        backend_options={"threads": 2},
        optimize=True,
        options=SegmenterOptions(similar=threshold),
    )
    seg.segment(frames[0])  # warm-up, then a fresh start
    seg.reset()
    runs0 = seg.model_runs
    cpu0 = time.process_time()
    masks = [seg.segment(f).copy() for f in frames]
    cpu = (time.process_time() - cpu0) / len(frames) * 1e3
    return masks, seg.model_runs - runs0, cpu


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    x, y = a >= 128, b >= 128
    union = int((x | y).sum())
    return 1.0 if union == 0 else int((x & y).sum()) / union


def main() -> int:
    """Parse arguments, measure, print; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 1.0, 2.0, 4.0])
    args = ap.parse_args()
    moving = list(sample_frames((720, 1280), args.frames))
    rng = np.random.default_rng(0)
    half = args.frames // 2
    noisy = [
        np.clip(moving[0] + rng.normal(0, 2, moving[0].shape), 0, 255).astype(np.uint8)
        for _ in range(half)
    ]
    clips = {"sample clip (moving)": moving, "still, then moving": noisy + moving[:half]}
    rows = []
    for name, frames in clips.items():
        reference, _, base_cpu = _masks(frames, 0.0)
        rows.append((name, "off", str(len(frames)), "0%", "1.0000", "1.0000", f"{base_cpu:.2f}"))
        for t in args.thresholds:
            masks, runs, cpu = _masks(frames, t)
            ious = [_iou(a, b) for a, b in zip(masks, reference, strict=True)]
            reuse = 1 - runs / len(frames)
            rows.append(
                (
                    name,
                    f"{t:g}",
                    str(runs),
                    f"{reuse:.0%}",
                    f"{np.mean(ious):.4f}",
                    f"{np.min(ious):.4f}",
                    f"{cpu:.2f}",
                )
            )
    columns = ("clip", "T", "model runs", "reuse", "IoU mean", "IoU min", "CPU ms/frame")
    print(markdown_table(columns, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
