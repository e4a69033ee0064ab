"""The task metric ``optimize`` reports, next to the same metric computed independently.

For two detectors (MediaPipe face detection short range and pose detection, SSD anchors) and
one landmark net (MediaPipe hand landmark full), each quantized to int8 (ORT static QDQ) by
``edgeopt.optimize``: the F1 / NME its report gives, and the same number computed here without
edgeopt's pre-processing, decoding or metric code: OpenCV resize in float, the card's
normalization in numpy, plain ONNX Runtime sessions, MediaPipe's anchor generation and box
decoding written out again from its calculators' documented algorithm (only the options are
read from the card), greedy NMS and matching, NME by hand. Same evaluation frames (the
built-in evaluation set: a real portrait through a moving camera and other real photographs).

    python benchmarks/task_metric_check.py [--models mediapipe-face-detection-short,...]
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

import edgeopt
from edgeopt import zoo
from edgeopt.bench.report import markdown_table
from edgeopt.data import load_images
from edgeopt.recipe import DataSettings

MODELS = (
    "mediapipe-face-detection-short",
    "mediapipe-pose-detection",
    "mediapipe-hand-landmark-full",
)


def anchors(o: Any) -> np.ndarray:
    """MediaPipe's SsdAnchorsCalculator, written out again (x, y, w, h per anchor)."""

    def scale(i: int) -> float:
        if o.num_layers == 1:
            return float((o.min_scale + o.max_scale) / 2)
        return float(o.min_scale + (o.max_scale - o.min_scale) * i / (o.num_layers - 1))

    out: list[tuple[float, float, float, float]] = []
    layer = 0
    while layer < o.num_layers:
        ratios: list[float] = []
        scales: list[float] = []
        last = layer
        while last < o.num_layers and o.strides[last] == o.strides[layer]:
            for r in o.aspect_ratios:
                ratios.append(r)
                scales.append(scale(last))
            if o.interpolated_scale_aspect_ratio > 0:
                nxt = 1.0 if last == o.num_layers - 1 else scale(last + 1)
                scales.append(math.sqrt(scale(last) * nxt))
                ratios.append(o.interpolated_scale_aspect_ratio)
            last += 1
        fh = math.ceil(o.input_size_height / o.strides[layer])
        fw = math.ceil(o.input_size_width / o.strides[layer])
        for y in range(fh):
            for x in range(fw):
                for r, s in zip(ratios, scales, strict=True):
                    w, h = (1.0, 1.0) if o.fixed_anchor_size else (s * r**0.5, s / r**0.5)
                    out.append(((x + o.anchor_offset_x) / fw, (y + o.anchor_offset_y) / fh, w, h))
        layer = last
    return np.array(out, np.float64)


def boxes(task: Any, outs: dict[str, np.ndarray], anc: np.ndarray) -> list[tuple[float, ...]]:
    """Decoded, thresholded, NMS-ed boxes (x1, y1, x2, y2, score) of one sample."""
    raw = outs[task.boxes_output][0].astype(np.float64)
    logits = outs[task.scores_output][0].astype(np.float64).max(axis=1)
    t = task.score_clipping_thresh
    scores = 1 / (1 + np.exp(-np.clip(logits, -t, t)))
    sx, sy, sw, sh = task.box_scale
    k = task.box_coord_offset
    found = []
    for i in np.flatnonzero(scores >= task.score_threshold):
        x, y, w, h = raw[i, k : k + 4]
        ax, ay, aw, ah = anc[i]
        xc, yc = x / sx * aw + ax, y / sy * ah + ay
        bw, bh = w / sw * aw, h / sh * ah
        if bw > 0 and bh > 0:
            found.append((xc - bw / 2, yc - bh / 2, xc + bw / 2, yc + bh / 2, float(scores[i])))
    found.sort(key=lambda b: -b[4])
    kept: list[tuple[float, ...]] = []
    for b in found:
        if all(iou(b, c) <= task.nms_iou for c in kept):
            kept.append(b)
    return kept[: task.max_boxes]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def f1(ref: list[list[tuple[float, ...]]], got: list[list[tuple[float, ...]]], at: float) -> float:
    tp = fp = fn = 0
    for r, g in zip(ref, got, strict=True):
        pairs = sorted(((iou(a, b), i, j) for i, a in enumerate(r) for j, b in enumerate(g)),
                       reverse=True)  # fmt: skip
        used_r: set[int] = set()
        used_g: set[int] = set()
        for v, i, j in pairs:
            if v >= at and i not in used_r and j not in used_g:
                used_r.add(i)
                used_g.add(j)
        tp += len(used_r)
        fn += len(r) - len(used_r)
        fp += len(g) - len(used_g)
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def feeds(card: Any, images: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """OpenCV resize in float and numpy normalization, NHWC (the MediaPipe models)."""
    i = card.interface
    h, w = i.input_size
    mean, std = np.array(i.mean, np.float32), np.array(i.std, np.float32)
    out = []
    for im in images:  # RGB uint8
        small = cv2.resize(im.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        out.append({i.input_name: ((small - mean) / std)[None].astype(np.float32)})
    return out


def check(name: str, folder: Path) -> list[str]:
    card = zoo.get(name).card
    path = zoo.pull(name)
    data = DataSettings()
    recipe = {"passes": [{"name": "quantize", "options": {"mode": "static"}}]}
    report = edgeopt.optimize(path, recipe, folder / name)
    metric = report.metric
    reported = float(report.fidelity[metric]) if report.fidelity else float("nan")
    images = load_images(None, data.evaluation_count, "evaluation", data.seed + 1).images
    samples = feeds(card, images)
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
                for p in (path, report.output)]  # fmt: skip
    runs = []
    for s in sessions:
        names = [o.name for o in s.get_outputs()]
        runs.append([dict(zip(names, s.run(names, f), strict=True)) for f in samples])
    task = card.task
    if metric == "f1":
        anc = anchors(task.anchors)
        ref = [boxes(task, o, anc) for o in runs[0]]
        got = [boxes(task, o, anc) for o in runs[1]]
        mine = f1(ref, got, task.match_iou)
        extra = f"{sum(map(len, ref))} reference boxes"
    else:
        errs = []
        for r, g in zip(runs[0], runs[1], strict=True):
            pr = r[task.output].reshape(-1, task.values_per_point)[: task.points, :2]
            pg = g[task.output].reshape(-1, task.values_per_point)[: task.points, :2]
            errs.append(np.linalg.norm(pr.astype(np.float64) - pg, axis=1) / task.coordinate_scale)
        mine = float(np.mean(errs))
        extra = f"{len(errs)} frames x {errs[0].size} points"
    return [name, metric, f"{reported:.4f}", f"{mine:.4f}", f"{abs(reported - mine):.4f}", extra]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="metric-check-") as tmp:
        for name in args.models.split(","):
            rows.append(check(name, Path(tmp)))
    headers = ["model (int8 static vs fp32)", "metric", "edgeopt", "independent", "|diff|", "on"]
    print(markdown_table(headers, rows))


if __name__ == "__main__":
    main()
