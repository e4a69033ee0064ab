"""How many of this process's CPUs other processes leave free: the segmenter's cue for threads.

A model run on two threads that spin while the run lasts is the fastest on a quiet 2-core
machine (MediaPipe selfie: 1.6 ms, against 2.0 ms on one thread), and the slowest when another
process holds one of the cores: each thread spins waiting for the other, which waits for the
core (5.8 ms). `SpareCores` reads, from the kernel's CPU counters, how much CPU time other
processes took on this process's CPUs since the last reading, so the segmenter can run a
one-thread copy of the model while they take a core.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psutil

from edgeopt.bench.environment import usable_cores

__all__ = ["SpareCores"]


def _busy_seconds(cpus: list[int] | None) -> float:
    """CPU seconds spent busy on ``cpus`` (all CPUs when None) since boot, by every process."""
    per_cpu = psutil.cpu_times(percpu=True)
    chosen = per_cpu if cpus is None else [per_cpu[i] for i in cpus if i < len(per_cpu)]
    # ``guest`` is already counted in ``user``; ``steal`` is time the hypervisor gave away.
    return sum(
        t.user
        + t.nice
        + t.system
        + getattr(t, "irq", 0.0)
        + getattr(t, "softirq", 0.0)
        + getattr(t, "steal", 0.0)
        for t in chosen
    )


def _own_seconds() -> float:
    """CPU seconds this process (every thread) has used."""
    times = os.times()
    return times.user + times.system


Counters = Callable[[], tuple[float, float]]
"""A reading of (busy CPU seconds of the CPUs watched, this process's own CPU seconds)."""


class SpareCores:
    """The CPUs (of this process's affinity) that other processes left idle, averaged over the
    last ``interval`` seconds or a little more.

    Args:
        interval: Shortest time between two readings of the counters (they tick every 10 ms:
            25 ticks per CPU in the default window).
        counters: Where the readings come from; default: the kernel's, for this process's
            CPUs (a test gives its own, with its ``clock``).
        cores: How many CPUs the counters cover; default: this process's usable ones.
        clock: Seconds, monotonic.
    """

    def __init__(
        self,
        interval: float = 0.25,
        counters: Counters | None = None,
        cores: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        try:
            cpus: list[int] | None = sorted(os.sched_getaffinity(0))
        except AttributeError:
            cpus = None
        self._counters = counters or (lambda: (_busy_seconds(cpus), _own_seconds()))
        self._clock = clock
        self.cores = cores or usable_cores()
        self._last: tuple[float, float, float] | None = None
        self.spare: float | None = None
        """The last estimate; None until ``interval`` has passed since the object was made."""
        self.update()

    def update(self) -> float | None:
        """Read the counters when ``interval`` has passed; the current estimate."""
        now = self._clock()
        if self._last is not None and now - self._last[0] < self.interval:
            return self.spare
        busy, own = self._counters()
        if self._last is not None:
            wall, busy0, own0 = self._last
            others = max(0.0, (busy - busy0) - (own - own0)) / (now - wall)
            self.spare = max(0.0, self.cores - others)
        self._last = (now, busy, own)
        return self.spare
