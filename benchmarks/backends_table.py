"""Backends table: ORT default vs ORT threads vs OpenVINO vs TVM untuned vs TVM tuned.

For each MediaPipe selfie model (general, landscape) this script first fills the TVM tuning
database (a stated time budget; a database that already covers the model tunes nothing), then
measures every variant interleaved in its own worker process with `edgeopt.bench.compare`,
and computes each variant's fidelity against ONNX Runtime fp32 on real portrait images
(`edgeopt.bench.fidelity`). It prints one Markdown table per model and writes the raw
comparisons as JSON.

``--pre-pass NAME`` also runs a registered pass on each model (options as JSON in
``--pre-pass-options``), tunes TVM on the rewritten model too, and adds "ORT default" and "TVM
tuned" rows on it; fidelity is still measured against ONNX Runtime fp32 on the original.
``--variants`` keeps only the named rows of the usual set (the baseline always stays).

Usage::

    .venv/bin/python benchmarks/backends_table.py [--tune-seconds 480] [--runs 200]
        [--models mediapipe-selfie mediapipe-selfie-landscape] [--out backends-table]
        [--pre-pass ort_layout --pre-pass-options '{"se_broadcast": false}']
        [--variants "ORT default" "TVM tuned"]

Figures depend on the machine and on what else runs on it; say so when quoting them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import edgeopt
from edgeopt import zoo
from edgeopt.bench.fidelity import compare_outputs, evaluation_feeds, run_outputs
from edgeopt.bench.harness import BenchSettings, Variant, compare
from edgeopt.passes.base import PassContext
from edgeopt.registry import get_backend, get_pass


def variants(model: str, threads: int, tuned: dict[str, Any]) -> list[Variant]:
    """The variants of one model, ORT default first (the baseline)."""
    out = [
        Variant(name="ORT default", model=model, backend="onnxruntime"),
        Variant(name="ORT 1 thread", model=model, backend="onnxruntime", options={"threads": 1}),
        Variant(
            name=f"ORT {threads} threads, no spin",
            model=model,
            backend="onnxruntime",
            options={"threads": threads, "spinning": False},
        ),
    ]
    if get_backend("openvino").is_available():
        out += [
            Variant(
                name="OpenVINO f32",
                model=model,
                backend="openvino",
                options={"threads": threads, "precision": "f32"},
            ),
            Variant(
                name="OpenVINO auto (bf16)",
                model=model,
                backend="openvino",
                options={"threads": threads, "precision": "auto"},
            ),
        ]
    if get_backend("litert").is_available():
        out.append(
            Variant(
                name="LiteRT (XNNPACK, .tflite)",
                model=model,
                backend="litert",
                options={"threads": threads},
            )
        )
    if get_backend("tvm").is_available():
        out += [
            Variant(name="TVM untuned", model=model, backend="tvm", options={"threads": threads}),
            Variant(
                name="TVM tuned, no rewrite",
                model=model,
                backend="tvm",
                options={**tuned, "rewrite": False},
            ),
            Variant(name="TVM tuned", model=model, backend="tvm", options=tuned),
        ]
    return out


def pre_pass(model: str, name: str, options: dict[str, Any], workdir: Path) -> str | None:
    """Run pass ``name`` on ``model``; the rewritten model's path (None: it did not apply)."""
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = PassContext(workdir=workdir, options=options)
    result = get_pass(name).apply(edgeopt.load(model), ctx)
    if result.skipped:
        print(f"\n(pre-pass {name} does not apply to {model}: {result.skipped})")
        return None
    print(f"\n(pre-pass {name} {options}: {dict(result.report).get('applied', result.report)})")
    return str(result.model.path)


def main() -> None:
    """Tune, measure and print the table for each model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--models", nargs="+", default=["mediapipe-selfie", "mediapipe-selfie-landscape"]
    )
    parser.add_argument(
        "--tune-seconds",
        type=float,
        default=480.0,
        help="TVM tuning budget per model (0: only apply the database tuned before).",
    )
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--cache-dir", default=None, help="TVM tuning database root.")
    parser.add_argument("--out", default="backends-table")
    parser.add_argument("--pre-pass", default=None, help="Pass to run before extra rows.")
    parser.add_argument("--pre-pass-options", default="{}", help="That pass's options (JSON).")
    parser.add_argument("--variants", nargs="+", default=None, help="Rows to keep (names).")
    args = parser.parse_args()
    pass_options = json.loads(args.pre_pass_options)
    logging.basicConfig(level=logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        model = str(zoo.pull(name))
        tune = {
            "threads": args.threads,
            "tune_trials": 100_000,
            "tune_seconds": args.tune_seconds,
            **({"cache_dir": args.cache_dir} if args.cache_dir else {}),
        }
        rewritten = None
        if args.pre_pass:
            rewritten = pre_pass(model, args.pre_pass, pass_options, out / "pre-pass" / name)
        for path in [model] + ([rewritten] if rewritten else []):
            if args.tune_seconds > 0 and get_backend("tvm").is_available():
                t0 = time.monotonic()
                report = get_backend("tvm").compile(edgeopt.load(path), tune).tuning
                print(f"\n## {path}: TVM tuning this run {time.monotonic() - t0:.0f} s: {report}")
        # The workers apply the database just filled; they must not tune again.
        tuned = {"threads": args.threads, "use_database": True}
        if args.cache_dir:
            tuned["cache_dir"] = args.cache_dir
        chosen = variants(model, args.threads, tuned)
        if args.variants:
            chosen = [v for i, v in enumerate(chosen) if i == 0 or v.name in args.variants]
        if rewritten:
            label = " ".join(
                [args.pre_pass, *(f"{k}={json.dumps(v)}" for k, v in pass_options.items())]
            )
            chosen.append(Variant(name=f"ORT default, {label}", model=rewritten))
            if get_backend("tvm").is_available():
                chosen.append(
                    Variant(
                        name=f"TVM tuned, {label}", model=rewritten, backend="tvm", options=tuned
                    )
                )
        feeds = evaluation_feeds(model, count=8)
        reference = run_outputs(model, feeds, "onnxruntime", {"optimization": "disable"})
        fidelity = {}
        for v in chosen:
            got = run_outputs(v.model, feeds, v.backend, v.options)
            fidelity[v.name] = compare_outputs(reference, got)
        comparison = compare(chosen, BenchSettings(warmup=20, runs=args.runs, block=10))
        (out / f"{name}.json").write_text(comparison.to_json())
        base = comparison.baseline.stats.p50
        print(f"\n| {name} | p50 ms | p99 ms | speed-up vs ORT default | max abs err | mask IoU |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in comparison.results:
            s, f = r.stats, fidelity[r.name]
            mid, lo, hi = comparison.speedup(r.name)
            print(
                f"| {r.name} | {s.p50:.2f} | {s.p99:.2f} | {mid:.2f}x ({lo:.2f}-{hi:.2f}) "
                f"| {f.max_abs:.1e} | {f.iou:.4f} |"
            )
        env = json.dumps(comparison.environment)
        print(f"\n(p50 of ORT default: {base:.2f} ms; environment: {env})")


if __name__ == "__main__":
    main()
