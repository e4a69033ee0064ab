"""Convert every .tflite in the mediapipe==0.10.14 wheel and compare it with LiteRT.

Downloads the wheel with the machine's pip (the same fixed cp311 manylinux wheel the zoo
uses), converts each model with edgeopt's TFLite importer, and runs both the ONNX model (ONNX
Runtime) and the original (LiteRT's interpreter) on random inputs in [0, 1] and, for image
inputs, on the built-in evaluation photographs scaled to [0, 1]. Prints, per model, the worst
max-abs error over its outputs and that error relative to the output's scale (its range or
largest magnitude, at least 1e-3).

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
from ai_edge_litert.interpreter import Interpreter

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


def compare(path: Path, data: bytes) -> tuple[str, str, str]:
    """(status, random: max abs / relative, real: max abs / relative) for one model."""
    try:
        model = convert_tflite(path)
    except EdgeoptError as e:
        return f"not converted: {e}", "-", "-"
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    interp = Interpreter(model_content=data)
    interp.allocate_tensors()
    out_names = [o.name for o in session.get_outputs()]
    results = []
    for real in (False, True):
        feeds = inputs(interp, real)
        if not feeds:
            results.append("-")
            continue
        worst_abs, worst_rel = 0.0, 0.0
        for feed in feeds:
            for d in interp.get_input_details():
                interp.set_tensor(d["index"], feed[d["name"]])
            interp.invoke()
            ref = [interp.get_tensor(d["index"]) for d in interp.get_output_details()]
            onnx_feed = {i.name: feed[i.name] for i in session.get_inputs()}
            got = dict(zip(out_names, session.run(None, onnx_feed), strict=True))
            for d, r in zip(interp.get_output_details(), ref, strict=True):
                g = got.get(d["name"])
                if g is None:
                    g = next(v for v in got.values() if v.shape == r.shape)
                err = float(np.abs(g.reshape(r.shape) - r).max())
                # Relative to the output's scale: its range or its largest magnitude, whichever
                # is larger (a scalar score varies little over 3 inputs), at least 1e-3.
                span = max(float(r.max() - r.min()), float(np.abs(r).max()), 1e-3)
                worst_abs, worst_rel = max(worst_abs, err), max(worst_rel, err / span)
        results.append(f"{worst_abs:.2e} / {worst_rel:.2e}")
    return "converted", results[0], results[1]


def main() -> None:
    """Print the conversion table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        whl = args.wheel or wheel(Path(tmp))
        with zipfile.ZipFile(whl) as z:
            names = sorted(n for n in z.namelist() if n.endswith(".tflite"))
            print("| model | status | random: max abs / rel | photos: max abs / rel |")
            print("|---|---|---|---|")
            for name in names:
                path = Path(tmp) / Path(name).name
                data = z.read(name)
                path.write_bytes(data)
                status, rnd, real = compare(path, data)
                print(f"| {Path(name).name} | {status} | {rnd} | {real} |")


if __name__ == "__main__":
    main()
