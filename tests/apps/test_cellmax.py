"""The per-cell maximum read off the small mask bounds the upscaled mask, and stays tight."""

from __future__ import annotations

import cv2
import numpy as np

from edgeopt.apps.background.cellmax import CellMaxCache, cell_spans


def test_cell_max_bounds_the_upscaled_mask_over_every_cell() -> None:
    rng = np.random.default_rng(3)
    cache = CellMaxCache()
    for small_shape, size, grid in [
        ((256, 256), (720, 1280), (90, 160)),
        ((144, 256), (480, 640), (60, 80)),
        ((256, 256), (479, 641), (60, 80)),  # odd frame, cells of unequal width
    ]:
        small = cv2.GaussianBlur(rng.integers(0, 256, small_shape).astype(np.uint8), (0, 0), 3)
        small[small < 140] = 0  # background where no person is, as the model's masks have
        big = cv2.resize(small, size[::-1], interpolation=cv2.INTER_LINEAR)
        got = cache(small, size, grid)
        assert got.shape == grid and got.dtype == np.uint8
        (r0, r1), (c0, c1) = cell_spans(size[0], grid[0]), cell_spans(size[1], grid[1])
        cells = [(max(a, 0), b + 1) for a, b in zip(r0, r1, strict=True)]
        spans = [(max(c, 0), d + 1) for c, d in zip(c0, c1, strict=True)]
        truth = np.array([[big[a:b, c:d].max() for c, d in spans] for a, b in cells])
        assert (got >= truth).all(), small_shape  # never says "no person" where there is one
        assert (got[truth == 0] == 0).mean() > 0.9  # and mostly exact where there is none
