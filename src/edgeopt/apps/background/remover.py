"""One frame in, one frame out: segmentation plus compositing, timed per stage.

`BackgroundRemover` is what every front end runs per frame — the video pipeline, the virtual
camera, the GStreamer element and the stage benchmark — so the numbers the benchmark prints
are those of the code that runs. With a latency budget it adapts how often the model runs:
when the recent per-frame time goes over budget the model runs on fewer frames (the mask is
reused between), and when there is room again, on more.
"""

from __future__ import annotations

import time

import numpy as np

from edgeopt.apps.background.composite import Compositor
from edgeopt.apps.background.segmenter import Order, Segmenter, StageTimes

__all__ = ["MAX_EVERY", "BackgroundRemover"]

MAX_EVERY = 8
"""The most frames one mask is reused for in budget mode."""


class BackgroundRemover:
    """Segment and composite frames, recording ms per stage (pre, infer, post, composite, frame).

    Args:
        segmenter: The segmenter (owns the compiled model).
        compositor: The background effect.
        budget_ms: Per-frame time budget (pre + infer + post + composite); None: no adaptation.
    """

    def __init__(
        self, segmenter: Segmenter, compositor: Compositor, budget_ms: float | None = None
    ) -> None:
        self.segmenter = segmenter
        self.compositor = compositor
        self.budget_ms = budget_ms
        self.times = StageTimes()
        self.frames = 0
        self._ema: float | None = None
        self._base_every = segmenter.every

    def reset(self) -> None:
        """Start afresh: forget masks, timings and the frame count."""
        self.segmenter.reset()
        self.segmenter.every = self._base_every
        self.times.clear()
        self.frames = 0
        self._ema = None

    def process(
        self, frame: np.ndarray, order: Order = "BGR", out: np.ndarray | None = None
    ) -> np.ndarray:
        """The frame with its background replaced (same size, order and channels).

        Args:
            frame: HxWx3/4 uint8 image in ``order``.
            order: Its channel order.
            out: Where to write the result (``frame`` itself works in place); None: new array.
        """
        t0 = time.perf_counter()
        mask = self.segmenter.segment(frame, order, self.times)
        t1 = time.perf_counter()
        out = self.compositor(frame, mask, order, out, self.segmenter.small_mask)
        t2 = time.perf_counter()
        self.times.add("composite", (t2 - t1) * 1e3)
        total = (t2 - t0) * 1e3
        self.times.add("frame", total)
        self.frames += 1
        if self.budget_ms is not None:
            self._adapt(total)
        return out

    def mask(self, frame: np.ndarray, order: Order = "BGR") -> np.ndarray:
        """The person mask of a frame, timed like `process`; valid until the next call."""
        return self.segmenter.segment(frame, order, self.times)

    def _adapt(self, total_ms: float) -> None:
        # Averaging over ~10 frames keeps one slow frame from changing the rate.
        self._ema = total_ms if self._ema is None else 0.9 * self._ema + 0.1 * total_ms
        budget = self.budget_ms or 0.0
        seg = self.segmenter
        if self._ema > budget and seg.every < MAX_EVERY:
            seg.every += 1
            self._ema = budget  # give the new rate time to show its effect
        elif self._ema < 0.5 * budget and seg.every > self._base_every:
            seg.every -= 1
            self._ema = budget * 0.75
