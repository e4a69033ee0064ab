r"""The detection task: the model's own box decoding, NMS, and the agreement F1 of the boxes.

A detector's raw outputs are not boxes: they are decoded (the model family's layout, anchors
for SSD), thresholded, and thinned by non-maximum suppression (NMS). Fidelity is measured on
what the application shows — the final boxes — because a small raw error can flip a box over
the threshold or through NMS, and a large one can leave every box in place.

**Decoders.** Both give boxes normalized to [0, 1] as ``x1, y1, x2, y2`` (not clipped), a score
and a class per box.

- ``yolo`` (the ultralytics export): one output ``[1, 4+C, N]`` or ``[1, N, 4+C]``
  (``channels_first``; None takes the axis of size 4+C to be the smaller one, the export's
  ``[1, 84, 8400]``). Per box ``cx, cy, w, h`` in input pixels, then C class scores already in
  [0, 1]; score = the best class score, class = its index. Normalized by the input size:
  ``x1 = (cx - w/2) / width``, ``y1 = (cy - h/2) / height`` and so on.
- ``ssd`` (MediaPipe's ``TensorsToDetectionsCalculator``): boxes ``[1, N, num_coords]`` and
  scores ``[1, N, C]``, one row per anchor of `SsdAnchors`. From the raw row at
  ``box_coord_offset`` — ``x, y, w, h`` when ``reverse_output_order`` (MediaPipe's XYWH),
  else ``y, x, h, w`` — with the anchor ``(xa, ya, wa, ha)`` and ``box_scale`` =
  ``(sx, sy, sw, sh)``::

      xc = x / sx * wa + xa          yc = y / sy * ha + ya
      w  = w / sw * wa               h  = h / sh * ha       (exp(w / sw) * wa, exp(h / sh) * ha
                                                             with apply_exponential_on_box_size)

  and the box is ``xc -/+ w/2, yc -/+ h/2``. A class's score is
  ``sigmoid(clip(raw, -t, t))`` with ``t = score_clipping_thresh`` (``sigmoid_score``; no
  clipping when t is None, the raw score when not ``sigmoid_score``); the box's is its best
  class's. As in MediaPipe, boxes of negative or ``nan`` width or height are dropped.

Then, for both: boxes scoring below ``score_threshold`` are dropped, greedy NMS runs per class
(highest score first; a box whose IoU with a kept box of its class is above ``nms_iou`` is
suppressed), and the ``max_boxes`` best are kept.

**Metric.** Per sample, candidate boxes are matched to reference boxes of the same class,
greedily, highest IoU first, each box at most once; a pair counts when its IoU is at least
``match_iou``. Summed over the samples, TP matched pairs, FP unmatched candidate boxes and FN
unmatched reference boxes give::

    precision = TP / (TP + FP)      recall = TP / (TP + FN)      f1 = 2 TP / (2 TP + FP + FN)

With no box on either side in the whole set the models agree: f1 = 1.0 (precision is 1.0 with
no candidate box, recall 1.0 with no reference box). ``box_iou`` is the mean IoU of the matched
pairs (1.0 when none) — how well the boxes that agree sit — and ``boxes`` the reference's box
count, the number f1 is about.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from edgeopt.errors import ConfigError
from edgeopt.tasks.anchors import SsdAnchors
from edgeopt.tasks.base import Outputs, Task, check_samples, read_output

__all__ = ["DetectionTask", "Detections", "SsdAnchors", "box_iou", "nms"]


@dataclass(frozen=True)
class Detections:
    """One sample's decoded boxes, best score first.

    Attributes:
        boxes: ``[M, 4]`` float64, ``x1, y1, x2, y2`` normalized to the input (not clipped).
        scores: ``[M]`` float64 scores.
        classes: ``[M]`` int64 class indices.
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of ``[M, 4]`` and ``[K, 4]`` boxes (``x1, y1, x2, y2``): ``[M, K]``.

    A box of no area has IoU 0 with everything (itself included).
    """
    a = a.reshape(-1, 4).astype(np.float64)
    b = b.reshape(-1, 4).astype(np.float64)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.asarray(iou, np.float64)


def nms(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float) -> np.ndarray:
    """Greedy per-class NMS: the indices kept, best score first.

    Highest score first (ties in input order), a box is suppressed when its IoU with a box of
    its class already kept is above ``iou``.
    """
    order = np.argsort(-scores, kind="stable")
    overlap = box_iou(boxes, boxes)
    kept: list[int] = []
    for i in order:
        if not any(classes[j] == classes[i] and overlap[i, j] > iou for j in kept):
            kept.append(int(i))
    return np.asarray(kept, np.int64)


@lru_cache(maxsize=8)
def _anchor_table(anchors: SsdAnchors) -> np.ndarray:
    """The anchors as float64, generated once per configuration (read-only: shared)."""
    table = anchors.generate().astype(np.float64)
    table.flags.writeable = False
    return table


def _match(reference: Detections, candidate: Detections, threshold: float) -> list[float]:
    """Greedy same-class matching, highest IoU first: the IoU of every matched pair."""
    if not len(reference) or not len(candidate):
        return []
    iou = box_iou(candidate.boxes, reference.boxes)
    iou[candidate.classes[:, None] != reference.classes[None, :]] = -1.0
    flat = np.argsort(-iou, axis=None, kind="stable")
    used_c: set[int] = set()
    used_r: set[int] = set()
    matched = []
    for c, r in zip(*np.unravel_index(flat, iou.shape), strict=True):
        value = float(iou[c, r])
        if value < threshold:
            break
        if int(c) in used_c or int(r) in used_r:
            continue
        used_c.add(int(c))
        used_r.add(int(r))
        matched.append(value)
    return matched


class DetectionTask(Task):
    """Boxes decoded as the model's family does, NMS-ed, and matched: agreement F1."""

    kind: Literal["detection"] = Field(default="detection", description="The task's kind.")
    decoder: Literal["yolo", "ssd"] = Field(description="How the raw outputs become boxes.")
    boxes_output: str = Field(description="The output holding the boxes (yolo: the only one).")
    scores_output: str | None = Field(
        default=None, description="ssd: the output holding the class scores [1, N, C]."
    )
    input_size: tuple[int, int] = Field(description="The model input's (height, width).")
    score_threshold: float = Field(default=0.5, ge=0, le=1, description="Boxes below are dropped.")
    nms_iou: float = Field(default=0.45, ge=0, le=1, description="NMS suppresses above this IoU.")
    match_iou: float = Field(default=0.5, gt=0, le=1, description="A pair agrees from this IoU.")
    max_boxes: int = Field(default=100, ge=1, description="The best boxes kept after NMS.")
    channels_first: bool | None = Field(
        default=None,
        description="yolo: [1, 4+C, N] (True) or [1, N, 4+C]; None: 4+C is the smaller axis.",
    )
    anchors: SsdAnchors | None = Field(default=None, description="ssd: the anchors (required).")
    num_coords: int | None = Field(
        default=None,
        ge=4,
        description="ssd: values per box row; None: the boxes output's last axis.",
    )
    box_coord_offset: int = Field(
        default=0, ge=0, description="ssd: where the box starts in a row."
    )
    reverse_output_order: bool = Field(
        default=True, description="ssd: True: x_center, y_center, w, h; False: y, x, h, w."
    )
    box_scale: tuple[float, float, float, float] | None = Field(
        default=None, description="ssd: (x_scale, y_scale, w_scale, h_scale) (required)."
    )
    apply_exponential_on_box_size: bool = Field(
        default=False, description="ssd: w = exp(raw_w / w_scale) * anchor_w (likewise h)."
    )
    sigmoid_score: bool = Field(
        default=True, description="ssd: scores are logits (apply a sigmoid)."
    )
    score_clipping_thresh: float | None = Field(
        default=100.0,
        gt=0,
        description="ssd: clip logits to +/- this before the sigmoid; None: no clip.",
    )

    metric: ClassVar[str] = "f1"
    default_bound: ClassVar[str] = "f1>=0.95"

    @model_validator(mode="after")
    def _decoder_fields(self) -> DetectionTask:
        if min(self.input_size) < 1:
            raise ValueError(f"input_size {self.input_size} must be positive (height, width)")
        if self.decoder == "ssd":
            missing = [
                name
                for name in ("anchors", "scores_output", "box_scale")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(
                    f"the ssd decoder needs {', '.join(missing)}: give the model's anchor "
                    "options, its scores output and its x/y/w/h scales"
                )
            if self.box_scale is not None and 0 in self.box_scale:
                raise ValueError(f"box_scale {self.box_scale} divides: no zero scale")
            if self.num_coords is not None and self.box_coord_offset + 4 > self.num_coords:
                raise ValueError(
                    f"box_coord_offset {self.box_coord_offset} + 4 is past num_coords "
                    f"{self.num_coords}"
                )
        else:
            ssd_only = [
                name
                for name in ("anchors", "scores_output", "box_scale", "num_coords")
                if getattr(self, name) is not None
            ]
            if ssd_only:
                raise ValueError(
                    f"{', '.join(ssd_only)} apply only to the ssd decoder: remove them"
                )
        return self

    def _shape_error(self, name: str, array: np.ndarray, want: str) -> ConfigError:
        return ConfigError(
            f"detection task: output {name!r} has shape {array.shape}, not {want}: "
            f"check boxes_output/scores_output and the {self.decoder} decoder's settings"
        )

    def _rows(self, name: str, array: np.ndarray, want: str) -> np.ndarray:
        """``[1, N, K]``, ``[1, 1, N, K]`` or ``[N, K]`` as ``[N, K]`` float64."""
        lead = array.shape[:-2]
        if array.ndim < 2 or math.prod(lead) != 1:
            raise self._shape_error(name, array, want)
        return array.reshape(array.shape[-2:]).astype(np.float64)

    def _decode_yolo(self, outputs: Outputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        name = self.boxes_output
        array = read_output(outputs, name, self.kind)
        want = "[1, 4+C, N] or [1, N, 4+C] with C >= 1 (set channels_first when N < 4+C)"
        rows = self._rows(name, array, want)
        first = self.channels_first
        if first is None:
            first = rows.shape[0] <= rows.shape[1]
        if first:
            rows = rows.T
        if rows.shape[1] < 5:
            raise self._shape_error(name, array, want)
        height, width = self.input_size
        cx, cy, w, h = (rows[:, k] for k in range(4))
        boxes = np.stack(
            [
                (cx - w / 2) / width,
                (cy - h / 2) / height,
                (cx + w / 2) / width,
                (cy + h / 2) / height,
            ],
            axis=1,
        )
        class_scores = rows[:, 4:]
        return boxes, np.max(class_scores, axis=1), np.argmax(class_scores, axis=1)

    def _decode_ssd(self, outputs: Outputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.anchors is None or self.scores_output is None or self.box_scale is None:
            raise ConfigError(
                "detection task: the ssd decoder needs anchors, scores_output and box_scale"
            )  # the validator already refused such a task
        anchors = _anchor_table(self.anchors)
        n = anchors.shape[0]
        raw = read_output(outputs, self.boxes_output, self.kind)
        coords = self.num_coords or (raw.shape[-1] if raw.ndim else 0)
        rows = self._rows(self.boxes_output, raw, f"[1, {n}, {coords}] (one row per anchor)")
        if rows.shape != (n, coords) or self.box_coord_offset + 4 > coords:
            raise self._shape_error(
                self.boxes_output, raw, f"[1, {n}, {coords}] (one row per anchor)"
            )
        raw_scores = read_output(outputs, self.scores_output, self.kind)
        scores = self._rows(self.scores_output, raw_scores, f"[1, {n}, C] (one row per anchor)")
        if scores.shape[0] != n or scores.shape[1] < 1:
            raise self._shape_error(self.scores_output, raw_scores, f"[1, {n}, C]")

        box = rows[:, self.box_coord_offset : self.box_coord_offset + 4]
        if self.reverse_output_order:
            x, y, w, h = box.T
        else:
            y, x, h, w = box.T
        sx, sy, sw, sh = self.box_scale
        xa, ya, wa, ha = anchors.T
        xc = x / sx * wa + xa
        yc = y / sy * ha + ya
        with np.errstate(over="ignore"):
            if self.apply_exponential_on_box_size:
                w = np.exp(w / sw) * wa
                h = np.exp(h / sh) * ha
            else:
                w = w / sw * wa
                h = h / sh * ha
        boxes = np.stack([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], axis=1)
        if self.sigmoid_score:
            if self.score_clipping_thresh is not None:
                t = self.score_clipping_thresh
                scores = np.clip(scores, -t, t)
            with np.errstate(over="ignore"):
                scores = 1.0 / (1.0 + np.exp(-scores))
        best = np.argmax(scores, axis=1)
        valid = (w >= 0) & (h >= 0)  # false for nan too, as MediaPipe's check
        return boxes[valid], scores[np.arange(n), best][valid], best[valid]

    def decode(self, outputs: Outputs) -> Detections:
        """One sample's final boxes: decoded, thresholded, NMS-ed, the best ``max_boxes``.

        Args:
            outputs: The sample's raw outputs by name.

        Raises:
            ConfigError: An output missing or of a shape the decoder cannot read (the
                message names the output and its shape).
        """
        if self.decoder == "yolo":
            boxes, scores, classes = self._decode_yolo(outputs)
        else:
            boxes, scores, classes = self._decode_ssd(outputs)
        keep = scores >= self.score_threshold
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep].astype(np.int64)
        kept = nms(boxes, scores, classes, self.nms_iou)[: self.max_boxes]
        return Detections(boxes[kept], scores[kept], classes[kept])

    def score(self, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> dict[str, float]:
        """Agreement of the decoded boxes over every sample (see the module docstring).

        Returns:
            ``{"f1", "precision", "recall", "boxes": reference boxes, "box_iou": mean IoU of
            the matched pairs}``.

        Raises:
            ConfigError: An output missing or of a shape the decoder cannot read, or the
                sample counts differ.
        """
        check_samples(reference, candidate, self.kind)
        tp = fp = fn = 0
        ious: list[float] = []
        for i, (ref_sample, cand_sample) in enumerate(zip(reference, candidate, strict=True)):
            try:
                ref, cand = self.decode(ref_sample), self.decode(cand_sample)
            except ConfigError as e:
                raise ConfigError(f"sample {i}: {e}") from e
            matched = _match(ref, cand, self.match_iou)
            ious += matched
            tp += len(matched)
            fp += len(cand) - len(matched)
            fn += len(ref) - len(matched)
        return {
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0,
            "precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / (tp + fn) if tp + fn else 1.0,
            "boxes": float(tp + fn),
            "box_iou": float(np.mean(ious)) if ious else 1.0,
        }

    def describe(self) -> str:
        """One line for reports."""
        outputs = repr(self.boxes_output)
        if self.scores_output:
            outputs += f" + {self.scores_output!r}"
        return (
            f"detection: {self.decoder} decoding of {outputs}, score >= {self.score_threshold:g}, "
            f"NMS at IoU {self.nms_iou:g}, F1 of boxes matched at IoU >= {self.match_iou:g}"
        )
