"""The idle-CPU reading; the segmenter's switch to its one-thread model while a core is taken.

The arithmetic and the switch are tested on readings the test gives, so they pass whatever
else the machine runs; one check reads the kernel's counters under a spinning process (a
reading that can only drop when the machine is busier). `benchmarks/spare_cores.py` prints the
readings and the segmenter's switch on a quiet machine and with a core taken.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

import edgeopt
from _helpers import one_core_taken
from edgeopt.apps.background import Segmenter
from edgeopt.apps.background.cpuload import SpareCores
from edgeopt.apps.background.portrait_clip import sample_frames
from edgeopt.bench.environment import usable_cores
from edgeopt.zoo import get


class _Counters:
    """Readings the test sets: busy seconds of every CPU, this process's own, and a clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.busy = 0.0
        self.own = 0.0

    def read(self) -> tuple[float, float]:
        return self.busy, self.own

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float, others: float, own: float) -> None:
        """``seconds`` pass while other processes keep ``others`` CPUs busy and this one ``own``."""
        self.now += seconds
        self.busy += (others + own) * seconds
        self.own += own * seconds


def test_the_spare_cores_are_the_cores_less_what_other_processes_took() -> None:
    c = _Counters()
    spare = SpareCores(interval=0.25, counters=c.read, cores=2, clock=c.clock)
    assert spare.spare is None  # one reading: no interval yet
    c.advance(0.5, others=1.0, own=0.8)
    assert spare.update() == pytest.approx(1.0)  # this process's own 0.8 CPU does not count
    c.advance(0.1, others=2.0, own=0.0)
    assert spare.update() == pytest.approx(1.0)  # inside the interval: the last estimate
    c.advance(0.4, others=2.0, own=0.0)
    assert spare.update() == pytest.approx(0.0)  # both cores taken, over the 0.5 s since
    c.advance(0.5, others=3.0, own=1.0)
    assert spare.update() == 0.0  # never below zero


def test_a_spinning_process_takes_one_cpu_from_the_spare_ones() -> None:
    with one_core_taken():
        spare = SpareCores(interval=0.6)
        time.sleep(0.65)
        loaded = spare.update()
    assert loaded is not None and 0.0 <= loaded <= usable_cores() - 0.6, loaded


def test_the_segmenter_runs_its_one_thread_model_while_the_spare_cores_are_too_few(
    selfie_model: Path,
) -> None:
    cores = usable_cores()
    model = edgeopt.compile(selfie_model, "ort", {"threads": cores})
    single = edgeopt.compile(selfie_model, "ort", {"threads": 1})
    reading: list[float | None] = [None]
    seg = Segmenter(
        model, get("mediapipe-selfie").interface, None, single, needs=2, spare=lambda: reading[0]
    )
    frame = next(iter(sample_frames((144, 256), 1)))
    tensor = seg.preprocess(frame).copy()
    want = seg.infer(tensor).copy()  # no reading yet: the model
    reading[0] = 1.6  # under 2, but inside the hysteresis
    seg.infer(tensor)
    assert seg.fallback_runs == 0
    reading[0] = 1.4  # a core mostly taken
    got = seg.infer(tensor)
    seg.infer(tensor)
    assert seg.fallback_runs == 2
    reading[0] = 1.7  # freed, but not enough to switch back
    seg.infer(tensor)
    assert seg.fallback_runs == 3
    reading[0] = 1.9
    seg.infer(tensor)
    assert (seg.fallback_runs, seg.model_runs) == (3, 6)
    np.testing.assert_allclose(got, want, atol=1e-5)  # the same model, on one thread
