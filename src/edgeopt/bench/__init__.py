"""Benchmarking: interleaved, one process per variant, every sample kept."""

from __future__ import annotations

from edgeopt.bench.harness import BenchSettings, Variant, compare
from edgeopt.bench.result import BenchmarkResult, Comparison, Stats

__all__ = ["BenchSettings", "BenchmarkResult", "Comparison", "Stats", "Variant", "compare"]
