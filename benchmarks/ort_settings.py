"""ONNX Runtime settings side by side: optimization level x intra-op threads, interleaved.

Usage: python benchmarks/ort_settings.py [MODEL|ZOO_NAME] [--seconds S] [--repeat N]

Measures ORT_ENABLE_ALL vs ORT_DISABLE_ALL at 1 and 2 threads on the MediaPipe selfie model
(default), one worker process per variant, and prints the table with per-round speed-ups
against the default (all optimizations, 2 threads). ``--repeat 2`` runs the whole comparison
twice and prints how far each ratio moved between the runs (the harness's stability check).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edgeopt import zoo
from edgeopt.bench import BenchSettings, Comparison, Variant, compare
from edgeopt.bench.report import markdown, markdown_table


def _model(spec: str) -> str:
    return str(zoo.pull(spec)) if spec in zoo.ZOO else str(Path(spec))


def run(model: str, seconds: float) -> Comparison:
    """One interleaved comparison of the four settings."""
    variants = [
        Variant(name=f"{level}-{t}t", model=model, options={"optimization": level, "threads": t})
        for level in ("all", "disable")
        for t in (2, 1)
    ]
    return compare(variants, BenchSettings(warmup=20, runs=None, seconds=seconds, block=20))


def main() -> None:
    """Parse arguments, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default="mediapipe-selfie")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    model = _model(args.model)
    runs = []
    for i in range(args.repeat):
        result = run(model, args.seconds)
        runs.append(result)
        print(f"\n## run {i + 1}: {Path(model).name}\n")
        print(markdown(result))
    if len(runs) > 1:
        print("## speed-up vs all-2t, run by run (median of per-round ratios)\n")
        table = []
        for r in runs[0].results:
            values = [c.speedup(r.name)[0] for c in runs]
            spread = (max(values) - min(values)) / min(values) * 100
            table.append([r.name, *(f"{v:.3f}x" for v in values), f"{spread:.1f}%"])
        headers = ["variant", *(f"run {i + 1}" for i in range(len(runs))), "spread"]
        print(markdown_table(headers, table))


if __name__ == "__main__":
    main()
