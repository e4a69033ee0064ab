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

The default models are the two selfie models and a MobileNetV3-Small LR-ASPP segmentation net
with random weights (``benchmarks/mobilenet_seg.py``). ``--compressed`` (default) adds the best
int8 and structured-pruned variants on the backends that run them (see ``compressed``).

Usage::

    .venv/bin/python benchmarks/backends_table.py [--tune-seconds 600] [--runs 200]
        [--models mediapipe-selfie mediapipe-selfie-landscape mobilenetv3-lraspp]
        [--no-compressed] [--out backends-table]
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
from edgeopt.bench.fidelity import compare_outputs, evaluation_feeds, mask_reader, run_outputs
from edgeopt.bench.harness import BenchSettings, Variant, compare
from edgeopt.bench.report import markdown_table
from edgeopt.interface import infer_interface
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
    from_tflite = edgeopt.load(model).metadata.get("props", {}).get("edgeopt.source_format")
    if get_backend("litert").is_available() and from_tflite == "tflite":
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
            Variant(name="TVM tuned", model=model, backend="tvm", options=tuned),
        ]
    return out


def compressed(model: str, threads: int, workdir: Path, bound: float) -> list[Variant]:
    """The best int8 and pruned variants on the backends that run them.

    int8: static, per-channel, Conv only (the most faithful int8 of ``passes_table.py``), on ORT
    and on OpenVINO (which runs QDQ models as int8). Pruned: structured channel pruning
    (sensitivity allocation, least-squares refit), the largest ratio of a small sweep whose mask
    IoU against ORT fp32 stays >= ``bound``. TVM gets neither: each needs its own tuning run.
    """
    art = edgeopt.load(model)
    calib = evaluation_feeds(art, "builtin", 16, seed=0, role="calibration")
    checks = evaluation_feeds(art, "builtin", 8, seed=1)
    reference = run_outputs(art, checks)
    reader = mask_reader(infer_interface(art))
    out: list[Variant] = []
    ctx = PassContext(workdir=workdir / "int8", calibration=calib, options={"op_types": ["Conv"]})
    int8 = str(get_pass("quantize").apply(art, ctx).model.path)
    out.append(Variant(name="ORT int8 (static, Conv only)", model=int8))
    if get_backend("openvino").is_available():
        options = {"threads": threads, "precision": "f32"}
        out.append(
            Variant(name="OpenVINO int8 (QDQ)", model=int8, backend="openvino", options=options)
        )
    best = None
    for ratio in (0.05, 0.1, 0.2):
        ctx = PassContext(
            workdir=workdir / f"pruned{ratio}", calibration=calib, options={"ratio": ratio}
        )
        result = get_pass("prune_structured").apply(art, ctx)
        if result.skipped is not None:
            continue
        iou = compare_outputs(reference, run_outputs(result.model, checks), reader).iou
        print(f"(structured pruning {ratio:.0%} of multiply-adds: IoU {iou:.4f})")
        if iou >= bound:
            best = (ratio, str(result.model.path))
    if best is not None:
        out.append(Variant(name=f"ORT pruned {best[0]:.0%} MACs", model=best[1]))
    return out


def model_path(name: str, out: Path) -> str:
    """A zoo model's verified ONNX file, the benchmark CNN (exported here), or a file path."""
    if name == "mobilenetv3-lraspp":
        from mobilenet_seg import export

        path = out / "mobilenetv3-lraspp.onnx"
        return str(path if path.is_file() else export(path))
    return str(zoo.pull(name)) if name in zoo.names() else name


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
        "--models",
        nargs="+",
        default=["mediapipe-selfie", "mediapipe-selfie-landscape", "mobilenetv3-lraspp"],
        help="Zoo names, ONNX files, or mobilenetv3-lraspp (benchmarks/mobilenet_seg.py).",
    )
    parser.add_argument(
        "--compressed",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Add the best int8 and structured-pruned rows (see compressed()).",
    )
    parser.add_argument("--iou-bound", type=float, default=0.98, help="For the pruned row.")
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
        model = model_path(name, out)
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
        if args.compressed:
            chosen += compressed(
                model, args.threads, out / "compressed" / Path(model).stem, args.iou_bound
            )
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
        reader = mask_reader(infer_interface(edgeopt.load(model)))
        fidelity = {}
        for v in chosen:
            got = run_outputs(v.model, feeds, v.backend, v.options)
            fidelity[v.name] = compare_outputs(reference, got, reader)
        comparison = compare(chosen, BenchSettings(warmup=20, runs=args.runs, block=10))
        (out / f"{name}.json").write_text(comparison.to_json())
        base = comparison.baseline.stats.p50
        table = []
        for r in comparison.results:
            s, f = r.stats, fidelity[r.name]
            mid, lo, hi = comparison.speedup(r.name)
            table.append(
                [
                    r.name,
                    f"{s.p50:.2f}",
                    f"{s.p99:.2f}",
                    f"{mid:.2f}x ({lo:.2f}-{hi:.2f})",
                    f"{f.max_abs:.1e}",
                    f"{f.iou:.4f}",
                ]
            )
        headers = [name, "p50 ms", "p99 ms", "speed-up vs ORT default", "max abs err", "mask IoU"]
        print()
        print(markdown_table(headers, table, align=["l", "r", "r", "r", "r", "r"]))
        env = json.dumps(comparison.environment)
        print(f"\n(p50 of ORT default: {base:.2f} ms; environment: {env})")


if __name__ == "__main__":
    main()
