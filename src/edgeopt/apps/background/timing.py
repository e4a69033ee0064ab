"""Per-stage timings of the background-removal pipeline, over a bounded window of frames."""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["StageTimes"]


class StageTimes:
    """Milliseconds spent per stage, per frame, over a bounded window of recent frames.

    Attributes:
        window: How many recent samples each stage keeps (memory stays bounded on a camera
            that runs all day).
    """

    def __init__(self, window: int = 10_000) -> None:
        self.window = window
        self._samples: dict[str, deque[float]] = {}
        self.counts: dict[str, int] = {}

    def add(self, stage: str, ms: float) -> None:
        """Record one sample of ``stage`` (the oldest drops out beyond ``window``)."""
        samples = self._samples.get(stage)
        if samples is None:
            samples = self._samples[stage] = deque(maxlen=self.window)
        samples.append(ms)
        self.counts[stage] = self.counts.get(stage, 0) + 1

    def samples(self, stage: str) -> list[float]:
        """The recent samples of ``stage`` (empty when it never ran)."""
        return list(self._samples.get(stage, ()))

    def stages(self) -> list[str]:
        """Stages recorded so far, in the order they first ran."""
        return list(self._samples)

    def percentiles(self, stage: str, last: int | None = None) -> tuple[float, float]:
        """(p50, p99) in ms of ``stage`` over its recent samples, or the ``last`` few."""
        values = self.samples(stage)
        if last is not None:
            values = values[-last:]
        if not values:
            return (float("nan"), float("nan"))
        p50, p99 = np.percentile(np.asarray(values), [50, 99])
        return (float(p50), float(p99))

    def clear(self) -> None:
        """Forget every sample."""
        self._samples.clear()
        self.counts.clear()
