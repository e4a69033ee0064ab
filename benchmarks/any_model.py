"""Every pass and backend on four differently shaped models: status, fidelity, speed-up.

Models: the two zoo models (NHWC RGB [0,1], one sigmoid map), a MobileNetV3-Small LR-ASPP
built here (`mobilenet_seg.py`, random weights) exported NCHW with ImageNet normalization and a
2-channel softmax, and the same network NHWC with 2-channel logits exported at opset 11 (the
TorchScript exporter: Shape/Slice/Concat-computed Resize sizes, as older converters write).
Each pass runs through the pipeline (fidelity on the built-in evaluation set, through the
model's interface: the mask IoU is on the person channel after softmax); each variant and
each backend is then measured interleaved against ONNX Runtime fp32 with its defaults.
Random weights make the LR-ASPP masks meaningless as segmentation, not as agreement.

Second table: the IoU ``optimize`` reports for int8 and structured pruning on a real video
(``--data`` clip, evaluation half) next to the same IoU computed independently (OpenCV decode,
numpy pre-processing, plain ONNX Runtime sessions, threshold 0.5).

    python benchmarks/any_model.py --seconds 8 [--json any_model.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mobilenet_seg

import edgeopt
from edgeopt import zoo
from edgeopt.bench import BenchSettings, Variant, compare
from edgeopt.bench.fidelity import feed_set, mask_reader
from edgeopt.bench.report import markdown_table
from edgeopt.errors import EdgeoptError
from edgeopt.interface import infer_interface
from edgeopt.metrics import compare_outputs, mask_iou
from edgeopt.pipeline import run_pipeline
from edgeopt.recipe import parse_recipe
from edgeopt.registry import run_outputs

IMAGENET = {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}
PASSES: dict[str, list[dict[str, Any]]] = {
    "simplify": [{"name": "simplify"}],
    "ort_layout": [{"name": "ort_layout"}],
    "fp16 (weights)": [{"name": "fp16"}],
    "int8 static (Conv)": [
        {"name": "quantize", "options": {"mode": "static", "op_types": ["Conv"]}}
    ],
    "pruned 10% MACs": [{"name": "prune_structured", "options": {"ratio": 0.1}}],
}
BACKENDS = {"OpenVINO f32": ("openvino", {}), "TVM untuned": ("tvm", {})}


def models(folder: Path) -> dict[str, tuple[Path, dict[str, Any] | None]]:
    """The four models and the interface fields the graph cannot tell."""
    lr_softmax = mobilenet_seg.export(
        folder / "lraspp_nchw_softmax.onnx", classes=2, head="softmax"
    )
    lr_logits = mobilenet_seg.export(
        folder / "lraspp_nhwc_logits_op11.onnx", classes=2, head="logits", nhwc=True, opset=11
    )
    return {
        "selfie general (zoo)": (zoo.pull("mediapipe-selfie"), None),
        "selfie landscape (zoo)": (zoo.pull("mediapipe-selfie-landscape"), None),
        "LR-ASPP NCHW ImageNet softmax": (lr_softmax, IMAGENET),
        "LR-ASPP NHWC logits opset 11": (lr_logits, None),
    }


def _status(step: Any) -> str:
    if step.applied:
        notes = [n for n in step.details.get("normalized", []) if n]
        return "applied" + (f" ({'; '.join(notes)})" if notes else "")
    return f"skipped: {step.skipped}" if step.skipped else "no change"


def table(name: str, path: Path, card: dict[str, Any] | None, args: Any, work: Path) -> list[Any]:
    """Rows (model, variant, status, IoU, speed-up) for one model."""
    rows: list[list[str]] = []
    variants = [Variant(name="ORT fp32", model=str(path))]
    fid: dict[str, str] = {}
    for label, passes in PASSES.items():
        recipe = parse_recipe({"passes": passes, "data": {"evaluation_count": 12}}, label)
        try:
            report = run_pipeline(path, recipe, work / f"{path.stem}-{label}", interface=card)
        except EdgeoptError as e:
            rows.append([name, label, f"failed: {str(e)[:120]}", "-", "-"])
            continue
        step = report.steps[-1]
        iou = report.fidelity.get("iou") if report.fidelity else None
        fid[label] = f"{iou:.4f}" if isinstance(iou, float) else "-"
        rows.append([name, label, _status(step), fid[label], ""])
        if step.applied:
            variants.append(Variant(name=label, model=report.output))
    art = edgeopt.load(path)
    iface = infer_interface(art, card)
    evals = feed_set(art, "builtin", 12, 1, "evaluation", iface)
    output = iface.output_name if iface is not None else None
    reference = run_outputs(art, evals.feeds, output=output)
    for label, (backend, options) in BACKENDS.items():
        try:
            got = run_outputs(art, evals.feeds, backend, options, output)
        except EdgeoptError as e:
            rows.append([name, label, f"failed: {str(e)[:120]}", "-", "-"])
            continue
        f = compare_outputs(reference, got, mask_reader(iface, evals))
        variants.append(Variant(name=label, model=str(path), backend=backend, options=options))
        rows.append([name, label, f"compiled (max abs {f.max_abs:.1e})", f"{f.iou:.4f}", ""])
    result = compare(variants, BenchSettings(warmup=10, runs=None, seconds=args.seconds))
    for row in rows:
        if row[1] in result.failures:
            row[2], row[4] = f"failed: {result.failures[row[1]][:120]}", "-"
        elif row[1] in result.speedups:
            mid, lo, hi = result.speedup(row[1])
            row[4] = f"{mid:.2f}x [{lo:.2f}-{hi:.2f}]"
    base = result.baseline.stats.p50
    rows.insert(0, [name, "ORT fp32 (baseline)", f"p50 {base:.3f} ms", "1.0000", "1.00x"])
    return rows


def independent_iou(fp32: Path, variant: Path, clip: Path, count: int) -> float:
    """Mean mask IoU on the clip's second half, without edgeopt's pre-processing code."""
    cap = cv2.VideoCapture(str(clip))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    a = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(variant), providers=["CPUExecutionProvider"])
    name = a.get_inputs()[0].name
    h, w = a.get_inputs()[0].shape[1:3]
    ious = []
    for index in np.linspace(total // 2, total - 1, num=count).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = cap.read()
        if not ok:
            continue
        rgb = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)[..., ::-1]
        x = (rgb.astype(np.float32) / 255.0)[None]
        ious.append(
            mask_iou(a.run(None, {name: x})[0][0, ..., 0], b.run(None, {name: x})[0][0, ..., 0])
        )
    cap.release()
    return float(np.mean(ious))


def agreement(work: Path, args: Any) -> list[list[str]]:
    """The reported vs the independently computed IoU for int8 and pruning, on a video."""
    from edgeopt.apps.background.portrait_clip import write_sample

    clip = write_sample(work / "clip.mp4", (480, 640), 8.0)  # 240 frames, both portraits
    src = zoo.pull("mediapipe-selfie")
    rows = []
    for label in ("int8 static (Conv)", "pruned 10% MACs"):
        data = {"source": str(clip), "evaluation_count": 24, "calibration_count": 16}
        recipe = parse_recipe({"passes": PASSES[label], "data": data}, label)
        report = run_pipeline(src, recipe, work / f"video-{label}")
        reported = float(report.fidelity["iou"]) if report.fidelity else float("nan")
        mine = independent_iou(src, Path(report.output), clip, 24)
        rows.append([label, f"{reported:.4f}", f"{mine:.4f}", f"{abs(reported - mine):.4f}"])
    return rows


def main() -> None:
    """Run both tables and print them as Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="interleaved time per model")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows: list[list[str]] = []
        for name, (path, card) in models(work).items():
            rows += table(name, path, card, args, work)
        print(
            markdown_table(
                ["model", "variant", "status", "IoU vs fp32", "speed-up vs ORT fp32 [p10-p90]"],
                rows,
            )
        )
        agree = agreement(work, args)
        print()
        print(
            markdown_table(
                ["MediaPipe selfie on a video", "IoU edgeopt reports", "independent IoU", "diff"],
                agree,
            )
        )
        out = {"table": rows, "agreement": agree, "edgeopt": edgeopt.__version__}
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
