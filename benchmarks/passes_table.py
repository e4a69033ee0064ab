"""Every optimization variant of the MediaPipe selfie models: latency, size, IoU vs fp32.

For each model (general, landscape) this builds fp32, simplified, int8 dynamic, int8 static
per-channel (all ops, and Conv only), accuracy-aware int8 (Conv only, IoU >= 0.98 on the
calibration frames), fp16 weights, 10/30/50% unstructured pruning and a sweep of structured
pruning (sensitivity allocation, least-squares reconstruction, channel counts multiples of
16), measures them interleaved in worker processes
(edgeopt.bench.compare, ratio to fp32 per round), and their IoU vs fp32 on a held-out
evaluation set of augmented real portraits. Then a structured-pruning sweep reports the largest
multiply-add reduction that keeps IoU >= 0.98, and an ORT op profile of fp32 vs int8 shows
where int8 time goes. Output is JSON (``--json``) plus printed tables.

    .venv/bin/python benchmarks/passes_table.py [--models mediapipe-selfie] [--runs 100]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from edgeopt import zoo
from edgeopt.artifact import ModelArtifact, load_onnx
from edgeopt.backends.onnxruntime import profile_ops
from edgeopt.bench import BenchSettings, Variant, compare
from edgeopt.bench.fidelity import compare_outputs, evaluation_feeds, mask_reader, run_outputs
from edgeopt.bench.report import markdown_table
from edgeopt.passes.base import PassContext
from edgeopt.passes.prune_structured import count_macs
from edgeopt.registry import get_pass


def _apply(name: str, model: ModelArtifact, work: Path, calib: Any, **options: Any) -> Any:
    impl = get_pass(name)
    ctx = PassContext(workdir=work, calibration=calib, options=options)
    return impl.apply(model, ctx)


def _profile(path: Path, feeds: Any, runs: int = 50) -> dict[str, float]:
    ops = profile_ops(load_onnx(path), feeds, runs)
    return {op: ms for op, (_, ms) in ops.items()}


def bench_model(name: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    fp32 = load_onnx(zoo.pull(name))
    calib = evaluation_feeds(fp32, "builtin", args.calibration, seed=0, role="calibration")
    evals = evaluation_feeds(fp32, "builtin", args.evaluation, seed=1)
    reference = run_outputs(fp32, evals)
    reader = mask_reader(zoo.get(name).interface)
    macs0 = count_macs(fp32.proto())
    work = out / name
    variants: dict[str, ModelArtifact] = {"fp32": fp32}
    notes: dict[str, Any] = {}
    t0 = time.time()
    variants["simplified"] = _apply("simplify", fp32, work / "simplify", ()).model
    variants["int8 dynamic"] = _apply(
        "quantize", fp32, work / "dyn", (), mode="dynamic", per_channel=True
    ).model
    variants["int8 static pc"] = _apply("quantize", fp32, work / "static", calib).model
    variants["int8 conv-only"] = _apply(
        "quantize", fp32, work / "conv", calib, op_types=["Conv"]
    ).model
    variants["int8 U8U8 rr"] = _apply(
        "quantize", fp32, work / "u8u8", calib, types="U8U8", reduce_range=True, per_channel=False
    ).model
    aware = _apply(
        "quantize",
        fp32,
        work / "aware",
        calib,
        op_types=["Conv"],
        accuracy={
            "metric": "iou",
            "threshold": 0.98,
            "max_fp32_nodes": 24,
            "candidate_op_types": ["Conv", "ConvTranspose"],
        },
    )
    variants["int8 acc-aware"] = aware.model
    notes["aware"] = {
        k: aware.report["accuracy"].get(k) for k in ("met", "fp32_nodes", "steps", "full_int8")
    }
    variants["fp16 weights"] = _apply("fp16", fp32, work / "fp16", ()).model
    for r in (0.1, 0.3, 0.5):
        variants[f"prune {int(r * 100)}%"] = _apply(
            "prune", fp32, work / f"prune{r}", (), sparsity=r, min_elements=64
        ).model
    sweep = {}
    for r in args.sweep:
        res = _apply("prune_structured", fp32, work / f"ps{r}", calib, ratio=r)
        if res.skipped is not None:
            continue
        variants[f"struct {r * 100:g}%"] = res.model
        sweep[r] = res.report["channels"]
    notes["sweep"] = sweep
    notes["build_s"] = time.time() - t0
    rows: dict[str, dict[str, Any]] = {}
    for label, art in variants.items():
        f = compare_outputs(reference, run_outputs(art, evals), reader)
        rows[label] = {
            "size_kib": art.size_bytes / 1024,
            "iou": f.iou,
            "iou_min": f.iou_min,
            "macs_saved": 1 - count_macs(art.proto()) / macs0 if "struct" in label else 0.0,
        }
    settings = BenchSettings(warmup=10, runs=args.runs, block=10)
    comp = compare(
        [Variant(name=k, model=str(v.path), options={"threads": 1}) for k, v in variants.items()],
        settings,
    )
    for res in comp.results:
        rows[res.name]["p50_ms"] = res.stats.p50
        sp = comp.speedups[res.name]
        rows[res.name]["speedup"] = sorted(sp)[len(sp) // 2]
    profile = {
        k: _profile(variants[k].path, evals[0])
        for k in ("fp32", "int8 static pc", "int8 conv-only", "int8 U8U8 rr")
    }
    return {"model": name, "macs": macs0, "rows": rows, "notes": notes, "profile": profile}


def _print(result: dict[str, Any]) -> None:
    print(f"\n## {result['model']} ({result['macs'] / 1e6:.1f} M multiply-adds)\n")
    headers = [
        "variant",
        "p50 ms (1 thread)",
        "speed-up vs fp32",
        "size KiB",
        "IoU mean",
        "IoU min",
        "MACs saved",
    ]
    table = []
    for k, r in result["rows"].items():
        p50 = f"{r['p50_ms']:.2f}" if r.get("p50_ms") else "-"
        table.append(
            [
                k,
                p50,
                f"{r['speedup']:.2f}x",
                f"{r['size_kib']:.0f}",
                f"{r['iou']:.4f}",
                f"{r['iou_min']:.4f}",
                f"{r['macs_saved'] * 100:.1f}%",
            ]
        )
    print(markdown_table(headers, table, align=["l", *"rrrrrr"]))
    ok = [
        (r["macs_saved"], k)
        for k, r in result["rows"].items()
        if "struct" in k and r["iou"] >= 0.98
    ]
    if ok:
        saved, best = max(ok)
        r = result["rows"][best]
        print(
            f"\nlargest structured pruning with IoU >= 0.98: {best}: {saved * 100:.1f}% fewer "
            f"multiply-adds, {r['speedup']:.2f}x fp32 speed, IoU {r['iou']:.4f}"
        )
    a = result["notes"]["aware"]
    steps = ", ".join(f"{s['fp32_nodes']}: {s['iou']:.4f}" for s in a["steps"])
    print(f"\naccuracy-aware int8: met={a['met']}, fp32 nodes: {a['fp32_nodes']}")
    print(f"  calibration IoU by number of fp32 convs: {steps}")
    for ratio, channels in result["notes"]["sweep"].items():
        print(f"structured {ratio}: channels (before, after): {channels}")
    print("\nORT op profile (ms per inference, 1 run of 50 averaged):")
    for variant, ops in result["profile"].items():
        top = ", ".join(f"{op} {ms:.2f}" for op, ms in list(ops.items())[:8])
        print(f"- {variant}: total {sum(ops.values()):.2f} ms: {top}")


def main() -> None:
    """Build every variant, measure it, print tables and write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=zoo.names())
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--calibration", type=int, default=16)
    p.add_argument("--evaluation", type=int, default=24)
    p.add_argument("--sweep", nargs="+", type=float, default=[0.005, 0.01, 0.05, 0.1, 0.3, 0.5])
    p.add_argument("--out", type=Path, default=Path("bench-out/passes"))
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    results = [bench_model(m, args, args.out) for m in args.models]
    for r in results:
        _print(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
