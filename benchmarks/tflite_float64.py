"""How far each float32 runtime is from a float64 evaluation of the same .tflite graph.

For chosen models of the mediapipe==0.10.14 wheel (fetched as tflite_wheel.py does), evaluates
the original graph in float64, op by op from the flatbuffer (_tflite_f64.py: torch, and a numpy
transcription of MediaPipe's custom operators; it shares no code with edgeopt's importer), and
prints, per output, the max abs error against it of LiteRT with XNNPACK (its default), LiteRT's
builtin kernels without delegates, LiteRT's reference kernels (LiteRT on one thread), and ONNX
Runtime running edgeopt's conversion (edgeopt.load), each with that error relative to the
output's scale (its range or largest magnitude, at least 1e-3). Inputs: 3 random in [0, 1]
and, for image inputs, the 3 built-in evaluation photographs scaled to [0, 1], as in
tflite_wheel.py; each row is the worst over one set of 3.

Measured (2-core Xeon Sapphire Rapids VM, shared, 2026-12-01; under 20 s):

- pose_landmark_full: on the photos, the segmentation logits (Identity_2, scale 1,815) are
  2.55 from float64 with LiteRT's reference kernels, 1.71 without delegates, 1.36 with ONNX
  Runtime, 0.72 with XNNPACK (random inputs: 0.46 / 0.43 / 0.23 / 0.57). That is float32
  rounding amplified by the network (its last convolution weighs its [0, 6] input by
  sum |w| = 503), not an importer error: edgeopt's conversion sits among the float32
  runtimes, nearer than LiteRT's own builtin kernels. Every other output is within 3e-4 of
  its scale (at most 0.1 abs) in all four, ONNX Runtime within 5.5e-5.
- face_landmark_with_attention: LiteRT cannot run it (three MediaPipe custom operators its
  Python interpreter lacks); ONNX Runtime on edgeopt's conversion is within 8.1e-7 of each
  of its 7 outputs' scale (at most 1.2e-4 abs) of the float64 evaluation.

The other 8 wheel models the evaluator covers (--models; all but the sparse detectors and the
selfie models) are within 2e-5 of their scale in all four runtimes.

    python benchmarks/tflite_float64.py [--wheel mediapipe-....whl] [--models a b ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from ai_edge_litert.interpreter import Interpreter, OpResolverType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tflite_f64 import evaluate
from tflite_wheel import inputs, wheel

import edgeopt
from edgeopt.errors import EdgeoptError

DEFAULT = ["pose_landmark_full", "face_landmark_with_attention"]
LITERT = {
    "XNNPACK": OpResolverType.AUTO,
    "no delegates": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    "reference": OpResolverType.BUILTIN_REF,
}
COLUMNS = [*(f"LiteRT {k}" for k in LITERT), "ONNX Runtime (edgeopt)"]


def _scale(r: np.ndarray) -> float:
    return max(float(r.max() - r.min()), float(np.abs(r).max()), 1e-3)


def runners(path: Path, data: bytes) -> tuple[dict[str, object], dict[str, str]]:
    """The float32 runtimes that can run the model by column, and why the others cannot."""
    found: dict[str, object] = {}
    missing: dict[str, str] = {}
    for label, kind in LITERT.items():
        col = f"LiteRT {label}"
        interp = Interpreter(model_content=data, num_threads=1, experimental_op_resolver_type=kind)
        try:
            interp.allocate_tensors()
            found[col] = interp
        except RuntimeError as e:  # MediaPipe custom ops (face_landmark_with_attention)
            missing[col] = str(e).strip().splitlines()[0]
    try:
        onnx_path = edgeopt.load(path).path
        found[COLUMNS[-1]] = ort.InferenceSession(
            str(onnx_path), providers=["CPUExecutionProvider"]
        )
    except EdgeoptError as e:
        missing[COLUMNS[-1]] = str(e)
    return found, missing


def run(runner: object, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Outputs by name of a LiteRT interpreter or an ONNX Runtime session."""
    if isinstance(runner, ort.InferenceSession):
        names = [o.name for o in runner.get_outputs()]
        outs = runner.run(None, {i.name: feed[i.name] for i in runner.get_inputs()})
        return dict(zip(names, outs, strict=True))
    assert isinstance(runner, Interpreter)
    for d in runner.get_input_details():
        runner.set_tensor(d["index"], feed[d["name"]])
    runner.invoke()
    return {d["name"]: runner.get_tensor(d["index"]) for d in runner.get_output_details()}


def table(name: str, path: Path, data: bytes) -> tuple[list[str], list[str]]:
    """Rows for one model (per output and input set, each runtime's worst error vs float64),
    and notes on what could not run."""
    found, missing = runners(path, data)
    probe = Interpreter(model_content=data)  # input details only; works without the custom ops
    notes = [f"{name}: {col} cannot run it ({why})" for col, why in missing.items()]
    rows: list[str] = []
    for real in (False, True):
        feeds = inputs(probe, real)
        if not feeds:
            continue
        worst: dict[tuple[str, str], tuple[float, float]] = {}
        scales: dict[str, float] = {}
        for feed in feeds:
            try:
                truth = evaluate(data, feed)
            except NotImplementedError as e:
                return [], [*notes, f"{name}: the float64 evaluator lacks {e}"]
            for col, runner in found.items():
                got = run(runner, feed)
                for out, t in truth.items():
                    g = got[out].reshape(t.shape).astype(np.float64)
                    err = float(np.abs(g - t).max())
                    old = worst.get((out, col), (0.0, 0.0))
                    worst[(out, col)] = (max(old[0], err), max(old[1], err / _scale(t)))
            for out, t in truth.items():
                scales[out] = max(scales.get(out, 0.0), _scale(t))
        for out in scales:
            cells = [
                f"{worst[(out, c)][0]:.3g} ({worst[(out, c)][1]:.1e})" if c in found else "-"
                for c in COLUMNS
            ]
            kind = "photos" if real else "random"
            rows.append(f"| {name} | {out} | {kind} | {scales[out]:.4g} | {' | '.join(cells)} |")
    return rows, notes


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, default=None)
    parser.add_argument("--models", nargs="+", default=DEFAULT, help="file stems in the wheel")
    args = parser.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        whl = args.wheel or wheel(Path(tmp))
        with zipfile.ZipFile(whl) as z:
            files = {Path(n).stem: n for n in z.namelist() if n.endswith(".tflite")}
            unknown = sorted(set(args.models) - set(files))
            if unknown:
                parser.error(f"not in the wheel: {unknown}; it has {sorted(files)}")
            print("Max abs error vs the float64 evaluation (relative to the output's scale):\n")
            print(f"| model | output | inputs | scale | {' | '.join(COLUMNS)} |")
            print("|---|---|---|---|" + "---|" * len(COLUMNS))
            notes: list[str] = []
            for name in args.models:
                path = Path(tmp) / Path(files[name]).name
                data = z.read(files[name])
                path.write_bytes(data)
                rows, more = table(name, path, data)
                if rows:
                    print("\n".join(rows), flush=True)
                notes += more
            print("\n" + "\n".join(notes) if notes else "")


if __name__ == "__main__":
    main()
