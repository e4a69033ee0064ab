r"""SSD anchors as MediaPipe generates them (``SsdAnchorsCalculator``), for the ssd decoder.

An SSD detector predicts, for every anchor, offsets from it; decoding needs the very anchors
the model was trained with, in the same order. MediaPipe's models (BlazeFace, palm and pose
detection) describe theirs with ``SsdAnchorsCalculatorOptions``; `SsdAnchors` takes the same
fields and reproduces the calculator's (non-multiscale) algorithm:

1. Layers ``0 .. num_layers-1`` have strides; consecutive layers with the same stride are
   *grouped* and their anchors interleaved on one grid (BlazeFace's strides 8, 16, 16, 16 are
   two grids: 16x16 and 8x8 on a 128 input).
2. Layer ``i`` has the scale ``s_i = min_scale + (max_scale - min_scale) i / (L - 1)`` with
   ``L`` the number of strides (``(min_scale + max_scale) / 2`` when ``L = 1``).
3. Each layer of a group adds one anchor per aspect ratio ``a`` at scale ``s_i``, plus, when
   ``interpolated_scale_aspect_ratio > 0``, one at ``sqrt(s_i s_{i+1})`` (``s_L = 1``) with
   that ratio. With ``reduce_boxes_in_lowest_layer``, layer 0 instead has exactly three:
   ``(0.1, 1)``, ``(s_0, 2)``, ``(s_0, 0.5)``. An anchor is ``h = s / sqrt(a)``,
   ``w = s sqrt(a)`` — or ``w = h = 1`` with ``fixed_anchor_size`` (the model then predicts
   sizes in input units, scaled by the decoder's ``box_scale``).
4. The group's grid is ``ceil(input / stride)`` cells each way (or ``feature_map_height`` /
   ``feature_map_width`` of its first layer when given); anchors go row by row, cell by cell,
   the group's anchors per cell in order, centred at ``((x + offset_x) / W, (y + offset_y) / H)``.

BlazeFace short range (128x128, strides 8, 16, 16, 16, one aspect ratio, interpolated):
16x16 cells x 2 + 8x8 x 6 = 896 anchors. Values are rounded to float32 as MediaPipe stores them.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["SsdAnchors"]


class SsdAnchors(BaseModel):
    """MediaPipe's ``SsdAnchorsCalculatorOptions`` (non-multiscale), and its anchors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_size_height: int = Field(ge=1, description="The model input's height in pixels.")
    input_size_width: int = Field(ge=1, description="The model input's width in pixels.")
    num_layers: int = Field(ge=1, description="Feature layers that predict boxes.")
    min_scale: float = Field(gt=0, description="The first layer's anchor scale.")
    max_scale: float = Field(gt=0, description="The last layer's anchor scale.")
    strides: tuple[int, ...] = Field(description="Each layer's stride (num_layers of them).")
    aspect_ratios: tuple[float, ...] = Field(
        default=(1.0,), description="Aspect ratios (w/h) per cell."
    )
    anchor_offset_x: float = Field(default=0.5, description="Anchor centre within a cell, x.")
    anchor_offset_y: float = Field(default=0.5, description="Anchor centre within a cell, y.")
    reduce_boxes_in_lowest_layer: bool = Field(
        default=False, description="Layer 0 has the three anchors (0.1, 1), (s, 2), (s, 0.5)."
    )
    interpolated_scale_aspect_ratio: float = Field(
        default=1.0, description="Ratio of the extra sqrt(s_i s_i+1) anchor; 0 or less: none."
    )
    fixed_anchor_size: bool = Field(default=False, description="Every anchor has w = h = 1.")
    feature_map_height: tuple[int, ...] = Field(
        default=(), description="Each layer's grid height; empty: ceil(input / stride)."
    )
    feature_map_width: tuple[int, ...] = Field(
        default=(), description="Each layer's grid width; empty: ceil(input / stride)."
    )

    @model_validator(mode="after")
    def _lengths(self) -> SsdAnchors:
        if len(self.strides) != self.num_layers:
            raise ValueError(
                f"strides has {len(self.strides)} entries for num_layers {self.num_layers}: "
                "give one stride per layer"
            )
        if any(s < 1 for s in self.strides):
            raise ValueError(f"strides {self.strides} must be positive")
        if self.feature_map_height or self.feature_map_width:
            sizes = {len(self.feature_map_height), len(self.feature_map_width)}
            if sizes != {self.num_layers}:
                raise ValueError(
                    "feature_map_height and feature_map_width need num_layers "
                    f"({self.num_layers}) entries each"
                )
        if not self.aspect_ratios or any(a <= 0 for a in self.aspect_ratios):
            raise ValueError(f"aspect_ratios {self.aspect_ratios} must be positive, at least one")
        return self

    def _scale(self, layer: int) -> float:
        count = len(self.strides)
        if count == 1:
            return (self.min_scale + self.max_scale) * 0.5
        return self.min_scale + (self.max_scale - self.min_scale) * layer / (count - 1.0)

    def _group(self, first: int) -> tuple[int, list[float], list[float]]:
        """Layers sharing ``first``'s stride: (the next layer, scales, aspect ratios)."""
        scales: list[float] = []
        ratios: list[float] = []
        layer = first
        while layer < len(self.strides) and self.strides[layer] == self.strides[first]:
            scale = self._scale(layer)
            if layer == 0 and self.reduce_boxes_in_lowest_layer:
                scales += [0.1, scale, scale]
                ratios += [1.0, 2.0, 0.5]
            else:
                scales += [scale] * len(self.aspect_ratios)
                ratios += list(self.aspect_ratios)
                if self.interpolated_scale_aspect_ratio > 0.0:
                    last = layer == len(self.strides) - 1
                    following = 1.0 if last else self._scale(layer + 1)
                    scales.append(math.sqrt(scale * following))
                    ratios.append(self.interpolated_scale_aspect_ratio)
            layer += 1
        return layer, scales, ratios

    def generate(self) -> np.ndarray:
        """The anchors in the model's order: ``[N, 4]`` float32 ``x_center, y_center, w, h``."""
        parts = []
        layer = 0
        while layer < self.num_layers:
            following, scales, ratios = self._group(layer)
            sqrt_ratio = np.sqrt(np.asarray(ratios, np.float64))
            heights = np.asarray(scales) / sqrt_ratio
            widths = np.asarray(scales) * sqrt_ratio
            if self.feature_map_height:
                fm_h, fm_w = self.feature_map_height[layer], self.feature_map_width[layer]
            else:
                stride = self.strides[layer]
                fm_h = math.ceil(self.input_size_height / stride)
                fm_w = math.ceil(self.input_size_width / stride)
            ys, xs, ids = np.meshgrid(
                np.arange(fm_h), np.arange(fm_w), np.arange(len(scales)), indexing="ij"
            )
            block = np.empty((fm_h, fm_w, len(scales), 4), np.float64)
            block[..., 0] = (xs + self.anchor_offset_x) / fm_w
            block[..., 1] = (ys + self.anchor_offset_y) / fm_h
            if self.fixed_anchor_size:
                block[..., 2:] = 1.0
            else:
                block[..., 2] = widths[ids]
                block[..., 3] = heights[ids]
            parts.append(block.reshape(-1, 4))
            layer = following
        return np.concatenate(parts).astype(np.float32)
