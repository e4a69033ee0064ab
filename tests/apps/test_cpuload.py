"""The idle-CPU reading; the segmenter's switch to its one-thread model while a core is taken."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

import edgeopt
from _helpers import one_core_taken
from edgeopt.apps.background import Segmenter
from edgeopt.apps.background.cpuload import SpareCores
from edgeopt.apps.background.portrait_clip import sample_frames
from edgeopt.bench.environment import usable_cores
from edgeopt.zoo import get


def _reading(seconds: float) -> float:
    spare = SpareCores(interval=seconds)
    time.sleep(seconds + 0.05)
    value = spare.update()
    assert value is not None
    return value


def test_a_spinning_process_takes_one_cpu_from_the_spare_ones() -> None:
    quiet = _reading(0.6)
    assert 0.0 <= quiet <= usable_cores()
    with one_core_taken():
        loaded = _reading(0.6)
        busy_self = SpareCores(interval=0.3)  # this process's own work does not count
        end = time.monotonic() + 0.35
        while time.monotonic() < end:
            pass
        own_busy = busy_self.update()
    assert loaded <= quiet - 0.6, (quiet, loaded)
    assert own_busy is not None and own_busy >= loaded - 0.5, (own_busy, loaded)


def test_the_segmenter_runs_its_one_thread_model_while_a_core_is_taken(
    selfie_model: Path,
) -> None:
    cores = usable_cores()
    model = edgeopt.compile(selfie_model, "ort", {"threads": cores})
    single = edgeopt.compile(selfie_model, "ort", {"threads": 1})
    seg = Segmenter(model, get("mediapipe-selfie").interface, None, single, needs=cores)
    frame = next(iter(sample_frames((144, 256), 1)))
    tensor = seg.preprocess(frame).copy()
    want = seg.infer(tensor).copy()
    assert seg.fallback_runs == 0
    with one_core_taken():
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            got = seg.infer(tensor)
    assert seg.fallback_runs > 0 and seg.model_runs > seg.fallback_runs
    np.testing.assert_allclose(got, want, atol=1e-5)  # the same model, on one thread
