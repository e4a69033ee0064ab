"""The landmarks task: points (face mesh, hand, pose keypoints) and their normalized error.

A landmark model outputs K points of ``values_per_point`` values each (x, y, then z,
visibility, presence, ... as the model has them), in any layout that flattens to
``[K, values_per_point]`` — ``[1, 1, 1, 1404]`` for MediaPipe's 468-point face mesh (3 values),
``[1, 63]`` for its 21 hand points. Only x and y, the first two values, are compared:
z is relative depth in model-specific units, and the rest are not positions.

The normalized mean error divides each point's Euclidean error in the image plane by the
image side ``s`` (``coordinate_scale``: the input width in pixels for pixel coordinates, 1.0
for coordinates already in [0, 1]), so it reads as a fraction of the image whatever the units::

    e_ik = sqrt((x_ik - x'_ik)^2 + (y_ik - y'_ik)^2) / s      (sample i, point k)
    nme  = mean_ik e_ik              nme_max = max_ik e_ik

``nme <= 0.01`` (the default bound) keeps the mean point within 1 % of the image side —
about 2.6 px on a 256 px input — and ``nme_max`` shows whether a single point jumped. Lower is
better for both. When ``points`` is given only the first ``points`` points are scored (some
models append extra values, e.g. a presence score, after the points).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np
from pydantic import Field

from edgeopt.errors import ConfigError
from edgeopt.tasks.base import Outputs, Task, check_samples, read_output, same_shape

__all__ = ["LandmarksTask"]


class LandmarksTask(Task):
    """Points: mean and worst (x, y) error divided by the image side."""

    kind: Literal["landmarks"] = Field(default="landmarks", description="The task's kind.")
    output: str = Field(description="The output holding the points.")
    values_per_point: int = Field(
        default=3, ge=2, description="Values per point (x, y, then z, visibility, ...)."
    )
    coordinate_scale: float = Field(
        gt=0,
        description=(
            "The image side in the output's coordinate units: the input width in pixels for "
            "pixel coordinates, 1.0 for normalized ones."
        ),
    )
    points: int | None = Field(
        default=None,
        ge=1,
        description="Points to score (the first ones); None: size // values_per_point.",
    )

    metric: ClassVar[str] = "nme"
    default_bound: ClassVar[str] = "nme<=0.01"

    def decode(self, outputs: Outputs) -> np.ndarray:
        """One sample's points as ``[K, values_per_point]`` float64, in the output's units.

        Raises:
            ConfigError: The output missing, or its size does not hold the points.
        """
        return self._points(read_output(outputs, self.output, self.kind))

    def _points(self, array: np.ndarray) -> np.ndarray:
        flat = array.reshape(-1).astype(np.float64)
        vpp = self.values_per_point
        if self.points is None:
            if flat.size == 0 or flat.size % vpp:
                raise ConfigError(
                    f"landmarks task: output {self.output!r} has shape {array.shape} "
                    f"({flat.size} values), not a whole number of points of {vpp} values: "
                    "set values_per_point, or points to score only the first ones"
                )
            count = flat.size // vpp
        else:
            count = self.points
            if flat.size < count * vpp:
                raise ConfigError(
                    f"landmarks task: output {self.output!r} has shape {array.shape} "
                    f"({flat.size} values), fewer than {count} points of {vpp} values: "
                    "set points and values_per_point to the model's"
                )
        return flat[: count * vpp].reshape(count, vpp)

    def score(self, reference: Sequence[Outputs], candidate: Sequence[Outputs]) -> dict[str, float]:
        """Normalized mean and worst point error over every point of every sample.

        Returns:
            ``{"nme": mean error / scale, "nme_max": worst error / scale}``.

        Raises:
            ConfigError: The output missing, of different shapes, or not holding the points.
        """
        check_samples(reference, candidate, self.kind)
        errors = []
        for i, (ref_sample, cand_sample) in enumerate(zip(reference, candidate, strict=True)):
            ref = read_output(ref_sample, self.output, self.kind, i)
            cand = read_output(cand_sample, self.output, self.kind, i)
            same_shape(ref, cand, self.output, self.kind)
            diff = self._points(ref)[:, :2] - self._points(cand)[:, :2]
            errors.append(np.hypot(diff[:, 0], diff[:, 1]) / self.coordinate_scale)
        every = np.concatenate(errors)
        return {"nme": float(np.mean(every)), "nme_max": float(np.max(every))}

    def describe(self) -> str:
        """One line for reports."""
        count = f"{self.points} points" if self.points else "points"
        return (
            f"landmarks: {count} of {self.values_per_point} values in {self.output!r}, "
            f"(x, y) error / {self.coordinate_scale:g}"
        )
