"""``edgeopt auto`` on every zoo model, one table: what wins at each task's default bound.

For each model of the zoo (segmenters, detectors, landmark nets, OCR, audio) the search runs
with the model's own card: its task's default bound (``iou>=0.98``, ``f1>=0.95``,
``nme<=0.01``, ``top1>=0.99``, ``text>=0.95``, ``snr>=30``), its default input shape, and
its own evaluation data (built-in photographs through its pre-processing, or built-in
speech). Printed per model: task, bound, the best exact variant (fidelity at the float32
noise floor: SNR >= 60 dB), the winner under the bound with its confirmed speed-up over
ONNX Runtime default [p10-p90] and its fidelity by the task's metric, how many variants ran
on each backend, and what failed with its one-line reason. A model that fails as a whole is
a row with its reason, never the end of the run. Last line: the geometric mean of the
winners' speed-ups. Say which CPU it ran on (``lscpu``) when you quote it.

    python benchmarks/zoo_suite.py --budget 4m [--models ppocr-v4-det,silero-vad]
        [--backends onnxruntime,openvino] [--json suite.json]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from edgeopt import zoo
from edgeopt.auto import AutoSettings, parse_bound, search
from edgeopt.bench.report import markdown_table
from edgeopt.errors import EdgeoptError

EXACT_SNR_DB = 60.0
"""A variant this close to the reference on every output counts as exact (float32 noise)."""


def _fmt(value: Any, spec: str = ".4f") -> str:
    ok = isinstance(value, float | int) and value == value
    return format(value, spec) if ok else "-"


def run_one(name: str, budget_s: float, backends: tuple[str, ...] | None, out: Path) -> dict:
    """Search one model; a row of the table as a dict."""
    settings = AutoSettings(budget_s=budget_s, backends=backends, measure_s=max(6.0, budget_s / 15))
    try:
        result = search(name, out / name, settings)
    except EdgeoptError as e:
        return {"model": name, "error": str(e).splitlines()[0]}
    metric = parse_bound(result.bound)[0]
    w = result.winner
    median, lo, hi = result.comparison.speedup(w.name)
    measured = [t for t in result.tried if t.status == "measured" and t.speedup is not None]
    exact = [
        t
        for t in measured
        if (t.fidelity or {}).get("snr", 0.0) >= EXACT_SNR_DB and not t.name.startswith("baseline")
    ]
    best_exact = max(exact, key=lambda t: t.speedup or 0.0, default=None)
    failed = [t for t in result.tried if t.status.startswith(("failed", "recipe failed"))]
    ran = Counter(t.backend for t in result.tried if t.fidelity and "error" not in t.fidelity)
    return {
        "model": name,
        "task": (w.fidelity or {}).get("task", "?"),
        "bound": result.bound,
        "best_exact": f"{best_exact.name} {best_exact.speedup:.2f}x" if best_exact else "-",
        "winner": w.name,
        "speedup": median,
        "p10": lo,
        "p90": hi,
        "fidelity": (w.fidelity or {}).get(metric),
        "metric": metric,
        "backends": dict(ran),
        "failures": [f"{t.name}: {t.status}" for t in failed],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="4m", help="Search budget per model: 90s, 4m.")
    parser.add_argument("--models", default="", help="Comma-separated zoo names (default all).")
    parser.add_argument("--backends", default="", help="Comma-separated (default: all here).")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    from edgeopt.cli._grammar import parse_duration

    budget = parse_duration(args.budget)
    names = [n for n in args.models.split(",") if n] or zoo.names()
    backends = tuple(b for b in args.backends.split(",") if b) or None
    rows = []
    with tempfile.TemporaryDirectory(prefix="zoo-suite-") as tmp:
        for name in names:
            print(f"# {name}", file=sys.stderr, flush=True)
            rows.append(run_one(name, budget, backends, Path(tmp)))
    table = []
    for r in rows:
        if "error" in r:
            table.append([r["model"], "-", "-", "-", "failed", "-", "-", "-", r["error"]])
            continue
        table.append(
            [
                r["model"],
                r["task"],
                r["bound"],
                r["best_exact"],
                r["winner"],
                f"{r['speedup']:.2f}x [{r['p10']:.2f}-{r['p90']:.2f}]",
                f"{r['metric']} {_fmt(r['fidelity'])}",
                ", ".join(f"{b} {n}" for b, n in sorted(r["backends"].items())),
                "; ".join(r["failures"])[:200] or "-",
            ]
        )
    headers = [
        "model",
        "task",
        "bound",
        "best exact",
        "winner",
        "speed-up [p10-p90]",
        "fidelity",
        "variants ran",
        "failed",
    ]
    print(markdown_table(headers, table))
    wins = [r["speedup"] for r in rows if "error" not in r and r["speedup"] > 0]
    if wins:
        gmean = math.exp(sum(math.log(s) for s in wins) / len(wins))
        print(
            f"\ngeometric mean of the winners' speed-ups over ORT default: {gmean:.2f}x "
            f"({len(wins)} models; {platform.processor() or platform.machine()})"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str))


if __name__ == "__main__":
    main()
