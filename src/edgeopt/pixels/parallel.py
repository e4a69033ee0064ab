"""Loops compiled by Numba run on every CPU: the one place that starts Numba's threads.

A user keeps its loops, plain Python functions in a dict ``LOOPS`` by name, in a module of
their own that is imported on the first call only (importing Numba costs 0.1 s, and every
``edgeopt`` command imports the modules that call the loops, for its help). Each loop is
compiled with ``parallel=True``, or for one thread where no thread-safe threading layer
(OpenMP or TBB) loads; the machine code is cached on disk (``__pycache__`` beside the module,
or Numba's cache folder when that is read-only).

Numba's OpenMP threads are told to sleep when idle (``OMP_WAIT_POLICY=PASSIVE`` unless the
environment sets it, read when OpenMP starts, at the first parallel call): spinning after each
loop they took the core the next inference needed (background removal at 720p: 11.2 ms of CPU
per frame instead of 8.2, for the same frame time). It is set only here, at the first call of
a loop (the first frame pre-processed or blended), so that commands that never run one, and
OpenMP users that start before it (PyTorch, when a model is converted first), are untouched.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["Loops", "compiled"]


def compiled(loop: Callable[..., None], parallel: bool) -> Callable[..., None]:
    """``loop`` compiled by Numba (at its first call), its machine code cached on disk."""
    import numba

    return numba.njit(  # type: ignore[no-any-return]
        loop, cache=True, nogil=True, boundscheck=False, fastmath=True, parallel=parallel
    )


class Loops:
    """The loops of one module, each run on every CPU from its first call.

    Args:
        load: Imports and returns the module that holds the loops (``LOOPS``).
    """

    def __init__(self, load: Callable[[], ModuleType]) -> None:
        self._load = load
        self._chosen: dict[str, Callable[..., None]] = {}
        self._lock = threading.Lock()

    def __call__(self, name: str, *args: Any) -> None:
        """Run loop ``name`` on ``args``; the first call imports Numba and compiles it."""
        loop = self._chosen.get(name)
        if loop is not None:
            loop(*args)
            return
        with self._lock:  # one thread compiles
            if name not in self._chosen:
                os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
                import numba

                # OpenMP or TBB: safe to call from several threads at once; not workqueue.
                numba.config.THREADING_LAYER = "threadsafe"  # type: ignore[attr-defined]
                loop = self._load().LOOPS[name]
                try:
                    parallel = compiled(loop, parallel=True)
                    parallel(*args)
                    self._chosen[name] = parallel
                    return
                except ValueError as e:  # "No threading layer could be loaded."
                    if "threading layer" not in str(e):
                        raise
                    self._chosen[name] = compiled(loop, parallel=False)
        self._chosen[name](*args)
