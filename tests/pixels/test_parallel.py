"""The one-thread versions of the loops (used where no thread-safe threading layer loads) give
what the parallel ones give, and the runner compiles each loop once."""

from __future__ import annotations

from types import ModuleType

import numpy as np

from edgeopt.apps.background import _loops as blend_loops
from edgeopt.apps.background.kernels import _rows
from edgeopt.pixels import _loops as resize_loops
from edgeopt.pixels.parallel import Loops, compiled
from edgeopt.pixels.resize import bilinear_taps


def test_serial_loops_match_the_parallel_ones() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    bg = rng.integers(0, 256, (45, 70, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (45, 70), dtype=np.uint8)
    wide = rng.integers(0, 256, (9, 70, 3), dtype=np.uint8)
    cases = {
        "blend": lambda out: (out, frame, bg, mask),
        "grid": lambda out: (out, frame, wide, mask, *_rows(45, 9)),
    }
    for name, args in cases.items():
        a, b = np.empty_like(frame), np.empty_like(frame)
        compiled(blend_loops.LOOPS[name], parallel=True)(*args(a))
        compiled(blend_loops.LOOPS[name], parallel=False)(*args(b))
        np.testing.assert_array_equal(a, b)
    taps = (*bilinear_taps(20, 45), *bilinear_taps(30, 70))
    picks = np.array([2, 1, 0], np.intp)
    consts = (picks, np.full(3, 1 / 255, np.float32), np.zeros(3, np.float32))
    a, b = np.empty((20, 30, 3), np.float32), np.empty((20, 30, 3), np.float32)
    compiled(resize_loops.LOOPS["resize_normalize"], parallel=True)(a, frame, *taps, *consts)
    compiled(resize_loops.LOOPS["resize_normalize"], parallel=False)(b, frame, *taps, *consts)
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_the_runner_loads_the_module_once() -> None:
    loads = []

    def load() -> ModuleType:
        loads.append(1)
        return blend_loops

    run = Loops(load)
    frame = np.zeros((4, 4, 3), np.uint8)
    for _ in range(3):
        run("blend", np.empty_like(frame), frame, frame, np.zeros((4, 4), np.uint8))
    assert len(loads) == 1
