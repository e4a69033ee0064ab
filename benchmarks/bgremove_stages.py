"""Per-stage latency of background removal: p50/p99 ms per stage and fps at 640x480 and 720p.

Measures the ONNX Runtime baseline (the general and the landscape zoo models) and every variant
given on the command line, interleaved, one worker process each, on the sample clip made from
the scikit-image and matplotlib portraits; prints a table and the mask IoU of each variant
against the fp32 model. Stages: pre (resize, colour, scale), infer, post (smooth, feather,
upscale), composite (the effect), frame (the four together, end to end).

    python benchmarks/bgremove_stages.py
    python benchmarks/bgremove_stages.py --variant int8=out/model.onnx \\
        --variant tvm=mediapipe-selfie@tvm --threads 2 --json stages.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from edgeopt.apps.background.stagebench import (
    STAGE_COLUMNS,
    StageBenchSettings,
    StageVariant,
    measure_stages,
    table_rows,
)
from edgeopt.bench.report import markdown_table

ROOT = Path(__file__).resolve().parents[1]


def parse_variant(spec: str, threads: int | None) -> StageVariant:
    """``NAME=SOURCE[@BACKEND]``: SOURCE is a zoo name, an optimized .onnx of the general zoo
    model, or ``ZOO_NAME:FILE.onnx`` for an optimized .onnx of another zoo model."""
    name, _, rest = spec.partition("=")
    source, _, backend = rest.partition("@")
    if not name or not source:
        raise SystemExit(f"bad --variant {spec!r}: use NAME=ZOO_NAME_OR_ONNX[@BACKEND]")
    options = {"threads": threads} if threads else {}
    zoo_name, sep, file = source.partition(":")
    if sep and file.endswith(".onnx"):
        return StageVariant(
            name=name,
            model=zoo_name,
            variant=file,
            backend=backend or "onnxruntime",
            options=options,
        )
    if source.endswith(".onnx"):
        return StageVariant(
            name=name, variant=source, backend=backend or "onnxruntime", options=options
        )
    return StageVariant(name=name, model=source, backend=backend or "onnxruntime", options=options)


def main() -> int:
    """Parse arguments, measure, print; returns the exit code."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", action="append", default=[], help="NAME=SOURCE[@BACKEND]")
    ap.add_argument("--threads", type=int, default=None, help="Inference threads of every variant")
    ap.add_argument("--frames", type=int, default=200, help="Timed frames per variant and size")
    ap.add_argument("--effect", default="blur", help="blur[:SIGMA], replace:FILE, remove, mask")
    ap.add_argument("--no-landscape", action="store_true", help="Skip the landscape baseline")
    ap.add_argument("--json", type=Path, default=None, help="Write every sample here")
    args = ap.parse_args()
    models = os.environ.get("EDGEOPT_MODELS_DIR") or str(ROOT.parent / "shared" / "models")
    opts = {"threads": args.threads} if args.threads else {}
    variants = [StageVariant(name="ort", options=opts)]
    if not args.no_landscape:
        variants.append(
            StageVariant(name="ort-landscape", model="mediapipe-selfie-landscape", options=opts)
        )
    variants += [parse_variant(s, args.threads) for s in args.variant]
    settings = StageBenchSettings(
        frames=args.frames,
        effect=args.effect,
        models_dir=models if Path(models).is_dir() else None,
    )
    report = measure_stages(variants, settings)
    rows = table_rows(report)
    # numeric-looking columns right-aligned, as the CLI's tables do
    align = [
        "r" if rows and all(r[i][:1].isdigit() for r in rows) else "l"
        for i in range(len(STAGE_COLUMNS))
    ]
    print("background removal, ms per frame per stage (p50 / p99)\n")
    print(markdown_table(STAGE_COLUMNS, rows, align=align))
    print(
        f"{report.cores} usable cores; 1-min load average {report.loadavg[0]:.2f} before, "
        f"{report.loadavg[1]:.2f} after (a shared machine: other jobs ran meanwhile)"
    )
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
