"""Convert every .tflite in the mediapipe==0.10.14 wheel and compare it with LiteRT.

Downloads the wheel with the machine's pip (the same fixed cp311 manylinux wheel the zoo
uses), converts each model with edgeopt's TFLite importer, and runs both the ONNX model (ONNX
Runtime) and the original (LiteRT's interpreter) on random inputs in [0, 1] and, for image
inputs, on the built-in evaluation photographs scaled to [0, 1]. Prints, per model, the worst
max-abs error over its outputs and that error relative to the output's scale (its range or
largest magnitude, at least 1e-3), and beside it LiteRT's own spread: how far LiteRT's default
(XNNPACK) result is from LiteRT's reference kernels on the same inputs, the float32 noise floor.

pose_landmark_full's segmentation logits (range ~1,600) are the one output over 1e-4, and
ONNX Runtime's error there is below LiteRT's own spread: a float64 evaluation of the same graph
(torch, op by op from the flatbuffer) puts every float32 runtime 0.2-2.6 away from the exact
logits, LiteRT's reference kernels the farthest, ONNX Runtime up to 1.4. The network amplifies
rounding: its last convolution weighs its [0, 6] input by sum |w| = 503, and a one-ulp change
of the input image alone moves the logits by 0.01 (6 inputs; 2-core Xeon VM, 2026-12-01).

face_landmark_with_attention converts, but LiteRT's Python interpreter lacks its three MediaPipe
custom operators and cannot run it. Against the same float64 evaluation, with those operators
transcribed from MediaPipe's kernels, its 7 outputs agree to 8e-7 of their range (same inputs,
same machine and date); tests/frontends checks each operator on its own.

    python benchmarks/tflite_wheel.py [--wheel mediapipe-0.10.14-....whl]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgeopt.bench.report import markdown_table
from edgeopt.data import load_images
from edgeopt.errors import EdgeoptError
from edgeopt.frontends.tflite import convert_tflite


def wheel(folder: Path) -> Path:
    """Download the mediapipe wheel into ``folder``."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--platform", "manylinux_2_17_x86_64", "--python-version", "311",
        "--implementation", "cp", "--abi", "cp311", "-q", "-d", str(folder), "mediapipe==0.10.14",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True)
    return next(folder.glob("mediapipe-*.whl"))


def inputs(interp: Interpreter, real: bool) -> list[dict[str, np.ndarray]]:
    """Feeds for the model: random, or photographs for [1,H,W,3] inputs."""
    details = interp.get_input_details()
    rng = np.random.default_rng(0)
    if not real:
        return [
            {d["name"]: rng.random(d["shape"], dtype=np.float32) for d in details} for _ in range(3)
        ]
    shape = details[0]["shape"]
    if len(details) != 1 or len(shape) != 4 or shape[3] != 3:
        return []
    images = load_images("builtin", 3, "evaluation").images
    return [
        {
            details[0]["name"]: (cv2.resize(im, (shape[2], shape[1])) / 255.0)[None].astype(
                np.float32
            )
        }
        for im in images
    ]


def _scale(r: np.ndarray) -> float:
    # Relative to the output's scale: its range or its largest magnitude, whichever is larger
    # (a scalar score varies little over 3 inputs), at least 1e-3.
    return max(float(r.max() - r.min()), float(np.abs(r).max()), 1e-3)


def _invoke(interp: Interpreter, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    for d in interp.get_input_details():
        interp.set_tensor(d["index"], feed[d["name"]])
    interp.invoke()
    return [interp.get_tensor(d["index"]) for d in interp.get_output_details()]


def compare(path: Path, data: bytes) -> tuple[str, str, str, str]:
    """(status, random: max abs / relative, real: max abs / relative, LiteRT's spread)."""
    try:
        model = convert_tflite(path)
    except EdgeoptError as e:
        return f"not converted: {e}", "-", "-", "-"
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    interp = Interpreter(model_content=data)
    try:
        interp.allocate_tensors()
    except RuntimeError as e:  # face_landmark_with_attention: MediaPipe's own custom ops
        # tests/frontends checks those ops against a transcription of MediaPipe's kernels.
        first = str(e).strip().splitlines()[0]
        return f"converted; LiteRT cannot run the original ({first})", "-", "-", "-"
    reference: Interpreter | None = Interpreter(
        model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF
    )
    try:
        reference.allocate_tensors()
    except RuntimeError:  # a custom op only the XNNPACK delegate runs (the selfie models')
        reference = None
    out_names = [o.name for o in session.get_outputs()]
    results, spreads = [], []
    for real in (False, True):
        feeds = inputs(interp, real)
        if not feeds:
            results.append("-")
            spreads.append("-")
            continue
        worst_abs, worst_rel, spread = 0.0, 0.0, 0.0
        for feed in feeds:
            ref = _invoke(interp, feed)
            for r, k in zip(ref, _invoke(reference, feed) if reference else [], strict=False):
                spread = max(spread, float(np.abs(r - k).max()) / _scale(r))
            onnx_feed = {i.name: feed[i.name] for i in session.get_inputs()}
            got = dict(zip(out_names, session.run(None, onnx_feed), strict=True))
            for d, r in zip(interp.get_output_details(), ref, strict=True):
                g = got.get(d["name"])
                if g is None:
                    g = next(v for v in got.values() if v.shape == r.shape)
                err = float(np.abs(g.reshape(r.shape) - r).max())
                worst_abs, worst_rel = max(worst_abs, err), max(worst_rel, err / _scale(r))
        results.append(f"{worst_abs:.2e} / {worst_rel:.2e}")
        spreads.append(f"{spread:.2e}" if reference else "-")
    return "converted", results[0], results[1], " / ".join(spreads)


def main() -> None:
    """Print the conversion table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        whl = args.wheel or wheel(Path(tmp))
        with zipfile.ZipFile(whl) as z:
            names = sorted(n for n in z.namelist() if n.endswith(".tflite"))
            table = []
            for name in names:
                path = Path(tmp) / Path(name).name
                data = z.read(name)
                path.write_bytes(data)
                status, rnd, real, spread = compare(path, data)
                table.append([Path(name).name, status, rnd, real, spread])
    headers = [
        "model",
        "status",
        "random: max abs / rel",
        "photos: max abs / rel",
        "LiteRT XNNPACK vs its reference kernels: rel, random / photos",
    ]
    print(markdown_table(headers, table))


if __name__ == "__main__":
    main()
