"""ONNX Runtime fp32 before and after the ort_layout pass, on the MediaPipe selfie models.

For each model this applies ``ort_layout`` (all four rewrites, transpose_to_reshape included,
plus cumulative ablations: SE broadcast only; + Resize/Conv swap; + NHWC input conv = the
pass's defaults), counts the ReorderInput/ReorderOutput
nodes in the model ORT builds for this CPU, measures every variant interleaved in its own
worker process (edgeopt.bench.compare: the ratio is taken per round, so a busy minute on a
shared machine hits every variant alike) at 1 and 2 intra-op threads, repeats the whole
comparison ``--repeats`` times, and compares outputs with the original on real images (max abs,
IoU). Output: printed tables, and JSON with ``--json``.

    .venv/bin/python benchmarks/layout_rewrites.py [--models mediapipe-selfie] [--runs 300]
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt import zoo
from edgeopt.artifact import load_onnx
from edgeopt.bench import BenchSettings, Variant, compare
from edgeopt.bench.fidelity import compare_outputs, evaluation_feeds, mask_reader, run_outputs
from edgeopt.interface import infer_interface
from edgeopt.passes.base import PassContext
from edgeopt.passes.ort_layout import OrtLayoutPass

ALL_OFF = {
    "se_broadcast": False,
    "resize_conv_swap": False,
    "nhwc_input_conv": False,
    "transpose_to_reshape": False,
}
ABLATIONS = {
    "se_broadcast": {**ALL_OFF, "se_broadcast": True},
    "+resize_conv_swap": {**ALL_OFF, "se_broadcast": True, "resize_conv_swap": True},
    "+nhwc_input_conv": {
        **ALL_OFF,
        "se_broadcast": True,
        "resize_conv_swap": True,
        "nhwc_input_conv": True,
    },
}


def _reorders(path: Path) -> dict[str, int]:
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.log_severity_level = 3
        so.optimized_model_filepath = str(Path(tmp) / "opt.onnx")
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        ops = collections.Counter(
            n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node
        )
    return {"ReorderInput": ops["ReorderInput"], "ReorderOutput": ops["ReorderOutput"]}


def bench_model(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    src = zoo.pull(name)
    base = load_onnx(src)
    paths: dict[str, Path] = {"fp32": src}
    everything = {k: True for k in ALL_OFF}
    full = OrtLayoutPass().apply(base, PassContext(workdir=work / "all", options=everything))
    paths["ort_layout"] = full.model.path
    for label, opts in ABLATIONS.items():
        res = OrtLayoutPass().apply(base, PassContext(workdir=work / label, options=opts))
        paths[label] = res.model.path

    variants = [
        Variant(name="fp32 t1", model=str(src), options={"threads": 1}),
        Variant(name="ort_layout t1", model=str(paths["ort_layout"]), options={"threads": 1}),
        Variant(name="fp32 t2", model=str(src), options={"threads": 2}),
        Variant(name="ort_layout t2", model=str(paths["ort_layout"]), options={"threads": 2}),
        Variant(
            name="ort_layout t2 no-spin",
            model=str(paths["ort_layout"]),
            options={"threads": 2, "spinning": False},
        ),
    ]
    variants += [
        Variant(name=f"{label} t1", model=str(paths[label]), options={"threads": 1})
        for label in ABLATIONS
    ]
    settings = BenchSettings(warmup=20, runs=args.runs, block=10)
    p50: dict[str, list[float]] = collections.defaultdict(list)
    ratio: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(args.repeats):
        cmp = compare(variants, settings)
        t2_base = np.asarray(cmp.speedups["fp32 t2"])
        for v in variants:
            p50[v.name].append(cmp.result(v.name).stats.p50)
            per_round = np.asarray(cmp.speedups[v.name])
            if " t2" in v.name:  # ratio against fp32 at the same thread count, round by round
                per_round = per_round / t2_base
            ratio[v.name].append(float(np.median(per_round)))

    feeds = evaluation_feeds(src, count=args.images)
    reference = run_outputs(src, feeds)
    reader = mask_reader(infer_interface(load_onnx(src)))
    fidelity = {
        label: compare_outputs(reference, run_outputs(path, feeds), reader).to_dict()
        for label, path in paths.items()
        if label != "fp32"
    }
    return {
        "model": name,
        "applied": full.report["applied"],
        "reorders": {label: _reorders(path) for label, path in paths.items()},
        "p50_ms": {k: v for k, v in p50.items()},
        "speedup": {k: v for k, v in ratio.items()},
        "fidelity": fidelity,
    }


def _print(r: dict[str, Any]) -> None:
    print(f"\n## {r['model']}  (rewrites applied: {r['applied']})")
    print(f"{'variant':24s} {'p50 ms (median of repeats)':>28s} {'speed-up vs fp32 (range)':>28s}")
    for k, v in r["p50_ms"].items():
        s = r["speedup"][k]
        rng = f"{statistics.median(s):.3f} ({min(s):.3f}-{max(s):.3f})"
        print(f"{k:24s} {statistics.median(v):>28.3f} {rng:>28s}")
    print(f"\n{'model':24s} {'ReorderInput':>12s} {'ReorderOutput':>13s}")
    for k, v in r["reorders"].items():
        print(f"{k:24s} {v['ReorderInput']:>12d} {v['ReorderOutput']:>13d}")
    print(f"\n{'variant':24s} {'max abs':>10s} {'IoU':>8s} {'IoU min':>8s}")
    for k, f in r["fidelity"].items():
        print(f"{k:24s} {f['max_abs']:>10.2e} {f['iou']:>8.4f} {f['iou_min']:>8.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models", nargs="+", default=["mediapipe-selfie", "mediapipe-selfie-landscape"]
    )
    ap.add_argument("--runs", type=int, default=300, help="timed runs per variant per repeat")
    ap.add_argument("--repeats", type=int, default=3, help="independent interleaved comparisons")
    ap.add_argument("--images", type=int, default=16, help="real images for the fidelity check")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            r = bench_model(name, args, Path(tmp) / name)
            _print(r)
            results.append(r)
    print("\nMeasured on a shared 2-core machine (other jobs running): compare the ratios.")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
