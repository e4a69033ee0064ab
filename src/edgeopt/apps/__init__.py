"""Applications built on edgeopt: programs that run an optimized model on live data.

``edgeopt.apps.background`` removes, blurs or replaces the background of a video in real time
with a person-segmentation model, on the same `CompiledModel` the benchmark measures.
"""

from __future__ import annotations

__all__: list[str] = []
