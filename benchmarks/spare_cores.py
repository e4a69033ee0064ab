"""The segmenter's one-thread switch under real load: the idle-CPU reading and where it ran.

The tests check the switch on readings they give (a test that reads the machine's own load
fails when something else runs beside it); this prints what the kernel's counters say on this
machine, quiet and with one core taken by a spinning process, and how many of the segmenter's
runs went to its one-thread model in each case, with the ms per frame.

    python benchmarks/spare_cores.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

from edgeopt.apps.background import load_segmenter
from edgeopt.apps.background.cpuload import SpareCores
from edgeopt.apps.background.portrait_clip import sample_frames
from edgeopt.bench.environment import usable_cores
from edgeopt.bench.report import markdown_table


@contextmanager
def _core_taken() -> Iterator[None]:
    """A Python busy loop on the last of this process's CPUs while the block runs."""
    cpu = max(os.sched_getaffinity(0))
    proc = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        preexec_fn=lambda: os.sched_setaffinity(0, {cpu}),
    )
    time.sleep(0.3)
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="Time per case.")
    args = parser.parse_args()
    seg = load_segmenter("mediapipe-selfie", optimize=True)
    frames = list(sample_frames((720, 1280), 30))
    rows = []
    for label, load in (("quiet", nullcontext()), ("one core taken", _core_taken())):
        with load:
            spare = SpareCores(interval=0.5)
            seg.reset()
            runs0, fallback0, n = seg.model_runs, seg.fallback_runs, 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < args.seconds:
                seg.segment(frames[n % len(frames)])
                n += 1
            ms = (time.perf_counter() - t0) / n * 1e3
            reading = spare.update()
        runs = seg.model_runs - runs0
        rows.append(
            [
                label,
                f"{reading:.2f} of {usable_cores()}" if reading is not None else "-",
                f"{runs}",
                f"{(seg.fallback_runs - fallback0) / max(runs, 1):.0%}",
                f"{ms:.1f}",
            ]
        )
    print(f"MediaPipe selfie, 720p frames, {args.seconds:g} s per case")
    head = ["load", "spare CPUs read", "model runs", "on one thread", "ms per frame"]
    print(markdown_table(head, rows))


if __name__ == "__main__":
    main()
