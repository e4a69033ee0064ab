"""Benchmark results as frozen data: every latency sample kept, statistics derived.

A `BenchmarkResult` holds one variant's samples and the facts around them; a `Comparison`
holds several variants measured interleaved, with one speed-up per round against the
baseline. Both round-trip through JSON (``to_json`` / ``from_json``); tables and charts are
rendered from them in `edgeopt.bench.report`.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["BenchmarkResult", "Comparison", "Stats"]

SCHEMA = "edgeopt.bench/1"


@dataclass(frozen=True)
class Stats:
    """Latency statistics in milliseconds, and throughput in inferences per second."""

    count: int
    p50: float
    p90: float
    p99: float
    min: float
    max: float
    mean: float
    stdev: float
    throughput: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> Stats:
        """Statistics of a non-empty list of samples."""
        a = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return cls(
            count=int(a.size),
            p50=float(p50),
            p90=float(p90),
            p99=float(p99),
            min=float(a.min()),
            max=float(a.max()),
            mean=float(a.mean()),
            stdev=float(a.std(ddof=1)) if a.size > 1 else 0.0,
            throughput=float(1000.0 / a.mean()) if a.mean() > 0 else float("inf"),
        )


@dataclass(frozen=True)
class BenchmarkResult:
    """One variant's measurement.

    Attributes:
        name: The variant's label.
        backend: Backend name.
        model: Path of the model (or compiled artifact) measured.
        options: The backend options used.
        samples_ms: Every timed inference, in order, in milliseconds.
        warmup: Untimed inferences run first.
        compile_s: Seconds to compile (create the session, build the library, ...).
        peak_rss_mb: Peak resident memory of the worker process.
        model_rss_mb: Resident memory added by compiling and running the model.
        model_size_bytes: Size of the model on disk.
    """

    name: str
    backend: str
    model: str
    options: Mapping[str, Any]
    samples_ms: tuple[float, ...]
    warmup: int
    compile_s: float
    peak_rss_mb: float
    model_rss_mb: float
    model_size_bytes: int

    @property
    def stats(self) -> Stats:
        """Percentiles, mean, spread and throughput of the samples."""
        return Stats.of(self.samples_ms)

    @property
    def threads(self) -> int | None:
        """The thread count the variant ran with, if set."""
        value = self.options.get("threads")
        return int(value) if value is not None else None


@dataclass(frozen=True)
class Comparison:
    """Variants measured interleaved in blocks (A B C A B C ...), one worker process each.

    Attributes:
        results: One result per variant, the baseline first.
        speedups: Per variant, one speed-up per round: the baseline's median latency in that
            round divided by the variant's (above 1: faster than the baseline).
        block: Timed calls per variant per round.
        environment: CPU, core count and library versions of the machine measured on.
        failures: Variants that could not be measured: name -> one-line error (the others
            were measured; a failure never aborts the comparison, except the baseline's).
    """

    results: tuple[BenchmarkResult, ...]
    speedups: Mapping[str, tuple[float, ...]]
    block: int
    environment: Mapping[str, Any] = field(default_factory=dict)
    failures: Mapping[str, str] = field(default_factory=dict)

    @property
    def baseline(self) -> BenchmarkResult:
        """The result every speed-up is relative to."""
        return self.results[0]

    def result(self, name: str) -> BenchmarkResult:
        """The result of the variant called ``name``."""
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def speedup(self, name: str) -> tuple[float, float, float]:
        """Median speed-up of ``name`` over the rounds, with the 10th and 90th percentiles."""
        values = self.speedups[name]
        lo, mid, hi = np.percentile(values, [10, 50, 90])
        return float(mid), float(lo), float(hi)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, statistics included for readers that do not recompute them."""
        results = []
        for r in self.results:
            d = asdict(r)
            d["samples_ms"] = list(r.samples_ms)
            d["options"] = dict(r.options)
            d["stats"] = asdict(r.stats)
            d["speedup_median"] = statistics.median(self.speedups[r.name])
            results.append(d)
        return {
            "schema": SCHEMA,
            "block": self.block,
            "environment": dict(self.environment),
            "results": results,
            "speedups": {k: list(v) for k, v in self.speedups.items()},
            "failures": dict(self.failures),
        }

    def to_json(self) -> str:
        """The comparison as JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Comparison:
        """Read back what `to_json` wrote.

        Raises:
            ValueError: Not a comparison of this schema.
        """
        data = json.loads(text)
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not an edgeopt benchmark file (schema {data.get('schema')!r})")
        results = tuple(
            BenchmarkResult(
                name=str(r["name"]),
                backend=str(r["backend"]),
                model=str(r["model"]),
                options=dict(r["options"]),
                samples_ms=tuple(float(v) for v in r["samples_ms"]),
                warmup=int(r["warmup"]),
                compile_s=float(r["compile_s"]),
                peak_rss_mb=float(r["peak_rss_mb"]),
                model_rss_mb=float(r["model_rss_mb"]),
                model_size_bytes=int(r["model_size_bytes"]),
            )
            for r in data["results"]
        )
        speedups = {k: tuple(v) for k, v in data["speedups"].items()}
        return cls(
            results=results,
            speedups=speedups,
            block=data["block"],
            environment=data.get("environment", {}),
            failures=dict(data.get("failures", {})),
        )
