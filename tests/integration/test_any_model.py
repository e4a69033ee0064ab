"""Models shaped unlike MediaPipe selfie, end to end through optimize and bgremove.

An NCHW model normalized per channel (ImageNet mean/std) with a 2-channel softmax output, and
an NHWC BGR model with 2-channel logits at opset 11: the fidelity `optimize` reports is checked
against a computation by hand (numpy pre-processing, softmax, threshold, IoU), and bgremove
keeps the person given the interface flags.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from _helpers import IMAGENET_MEAN, IMAGENET_STD, make_red_logits_nhwc_bgr, make_red_softmax_nchw
from edgeopt.apps.background.portrait_clip import write_sample
from edgeopt.cli.main import app
from edgeopt.data import load_images
from edgeopt.metrics import mask_iou

KINDS = {
    "softmax-nchw-imagenet": (
        make_red_softmax_nchw,
        [
            "--input-mean",
            ",".join(map(str, IMAGENET_MEAN)),
            "--input-std",
            ",".join(map(str, IMAGENET_STD)),
        ],
    ),
    "logits-nhwc-bgr-opset11": (make_red_logits_nhwc_bgr, ["--input-order", "bgr"]),
}


def _by_hand(kind: str, image: np.ndarray) -> np.ndarray:
    """The input tensor, computed without edgeopt (RGB uint8 image in; bilinear in float)."""
    resized = cv2.resize(image.astype(np.float32), (32, 32), interpolation=cv2.INTER_LINEAR)
    small = resized.astype(np.float64)
    if kind.startswith("softmax"):
        x = (small - IMAGENET_MEAN) / IMAGENET_STD
        return x.transpose(2, 0, 1)[None].astype(np.float32)
    return (small[..., ::-1] / 255.0)[None].astype(np.float32)


def _person(kind: str, out: np.ndarray) -> np.ndarray:
    """Person probability by hand: channel 1 of a softmax over the channel axis."""
    z = out[0] if kind.startswith("softmax") else np.moveaxis(out[0], -1, 0)
    if kind.startswith("logits"):
        z = np.exp(z - z.max(0)) / np.exp(z - z.max(0)).sum(0)
    return z[1]


@pytest.mark.parametrize("kind", list(KINDS))
def test_optimize_reports_the_iou_a_hand_computation_gives(kind: str, tmp_path: Path) -> None:
    make, flags = KINDS[kind]
    model = make(tmp_path / "m.onnx")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["optimize", str(model), "-o", str(out), "--quantize", "static", *flags]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["interface"]["person_channel"] == 1 and not report["warnings"]
    count = report["data"]["evaluation_count"]
    images = load_images("builtin", count, "evaluation", seed=report["data"]["seed"] + 1).images
    a = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    ious = []
    for image in images:
        x = _by_hand(kind, image)
        name = a.get_inputs()[0].name
        ious.append(
            mask_iou(
                _person(kind, a.run(None, {name: x})[0]), _person(kind, b.run(None, {name: x})[0])
            )
        )
    assert report["fidelity"]["iou"] == pytest.approx(float(np.mean(ious)), abs=1e-9)
    assert report["fidelity"]["kind"] == "mask"
    # The report says what the data was, and that calibration and evaluation differ.
    assert "Hopper" in report["data"]["evaluation"]
    assert "astronaut" in report["data"]["calibration"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_bgremove_keeps_the_person_given_the_interface(kind: str, tmp_path: Path) -> None:
    make, flags = KINDS[kind]
    model = make(tmp_path / "m.onnx")
    frame = np.zeros((60, 80, 3), np.uint8)
    frame[:, :40, 2] = 230  # BGR red: the person
    frame[:, 40:, 0] = 200
    clip = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"MJPG"), 10, (80, 60))
    for _ in range(5):
        writer.write(frame)
    writer.release()
    out = tmp_path / "out.avi"
    result = CliRunner().invoke(
        app,
        [
            "bgremove",
            str(clip),
            "-o",
            str(out),
            "--model",
            str(model),
            "--effect",
            "mask",
            "--feather",
            "0",
            *flags,
        ],
    )
    assert result.exit_code == 0, result.output
    ok, got = cv2.VideoCapture(str(out)).read()
    assert ok and got[:, :30].mean() > 200 and got[:, 50:].mean() < 40


def test_optimize_without_an_image_input_warns_and_claims_no_iou(tmp_path: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    from _helpers import save_model

    w = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "classifier",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(w, "w")],
    )
    model = save_model(graph, tmp_path / "cls.onnx")
    result = CliRunner().invoke(app, ["optimize", str(model), "-o", str(tmp_path / "o"), "--fp16"])
    assert result.exit_code == 0, result.output
    assert "warning: fidelity was measured on random inputs" in result.output.replace("\n", " ")
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    fid = report["fidelity"]
    assert fid["kind"] == "tensor" and fid["iou"] is None  # no IoU is claimed
    assert fid["top1"] == 1.0 and fid["max_abs"] < 1e-2  # output metrics instead


def test_sample_clip_helper_still_writes(tmp_path: Path) -> None:
    assert write_sample(tmp_path / "s.mp4", (48, 64), 0.2).is_file()


def test_optimize_is_public_api(conv_model: Path, tmp_path: Path) -> None:
    import edgeopt

    report = edgeopt.optimize(conv_model, {"passes": [{"name": "fp16"}]}, tmp_path / "o")
    assert isinstance(report, edgeopt.PipelineReport) and report.steps[0].applied
    assert (tmp_path / "o" / "model.onnx").is_file()
