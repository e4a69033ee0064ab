"""Fidelity by the model's card: every input filled from real data, state carried, task metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from _helpers import save_model, store_card
from edgeopt.artifact import load_onnx
from edgeopt.bench.fidelity import (
    carried_state,
    feed_set,
    measure_fidelity,
    run_samples,
    score_samples,
)
from edgeopt.card import AudioInput, ModelCard, card_of, constant_feeds
from edgeopt.errors import ConfigError
from edgeopt.interface import ModelInterface
from edgeopt.pipeline import optimize
from edgeopt.tasks import DetectionTask


def vad_like(path: Path, window: int = 6, context: int = 2) -> Path:
    """A streaming audio model with recurrent state and an `If` on its sample-rate input.

    ``stateN = 0.5 * state + mean(input)``; ``output = sigmoid(sum(stateN))`` when
    ``sr == 16000``, else ``-sum(stateN)`` (a wrong rate takes the other branch).
    """
    s = helper.make_tensor_value_info
    then = helper.make_graph(
        [helper.make_node("Sigmoid", ["total"], ["p_then"])],
        "then",
        [],
        [s("p_then", TensorProto.FLOAT, [1, 1])],
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["total"], ["p_else"])],
        "else",
        [],
        [s("p_else", TensorProto.FLOAT, [1, 1])],
    )
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], axes=[1], keepdims=1),
        helper.make_node("Mul", ["state", "half"], ["decayed"]),
        helper.make_node("Add", ["decayed", "m"], ["stateN"]),
        helper.make_node("ReduceSum", ["stateN", "one_axis"], ["total"], keepdims=1),
        helper.make_node("Equal", ["sr", "rate"], ["is16k"]),
        helper.make_node("If", ["is16k"], ["output"], then_branch=then, else_branch=other),
    ]
    inits = [
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array([1], np.int64), "one_axis"),
        numpy_helper.from_array(np.array(16000, np.int64), "rate"),
    ]
    graph = helper.make_graph(
        nodes,
        "vad_like",
        [
            s("input", TensorProto.FLOAT, [1, context + window]),
            s("state", TensorProto.FLOAT, [1, 4]),
            s("sr", TensorProto.INT64, []),
        ],
        [s("output", TensorProto.FLOAT, [1, 1]), s("stateN", TensorProto.FLOAT, [1, 4])],
        inits,
    )
    save_model(graph, path)
    card = ModelCard(
        audio=AudioInput(input_name="input", sample_rate=16000, window=window, context=context),
        values={"sr": 16000},
        state={"state": "stateN"},
    )
    return store_card(path, card)


def test_audio_card_fills_every_input_and_state_is_carried(tmp_path: Path) -> None:
    model = vad_like(tmp_path / "vad.onnx")
    fs = feed_set(model, "auto", count=1)  # one second of windows of built-in speech
    assert len(fs.feeds) == 16000 // 6 and not fs.random and fs.state == {"state": "stateN"}
    first = fs.feeds[0]
    assert first["input"].shape == (1, 8) and first["input"][0, :2].tolist() == [0, 0]
    assert first["sr"].dtype == np.int64 and int(first["sr"]) == 16000  # never random 0/1
    assert "windows of built-in speech (evaluation)" in fs.source
    outs = run_samples(model, fs.feeds[:50], state=fs.state)
    state = np.zeros((1, 4), np.float32)
    for f, out in zip(fs.feeds[:50], outs, strict=True):  # the recursion by hand
        state = 0.5 * state + f["input"].mean()
        assert np.allclose(out["stateN"], state, atol=1e-6)
        assert np.allclose(out["output"], 1 / (1 + np.exp(-state.sum())), atol=1e-6)
    warm = carried_state(model, fs)
    assert np.allclose(warm.feeds[50]["state"], outs[49]["stateN"])  # calibration sees real state
    m = measure_fidelity(model, model, fs)
    assert m.task == "generic" and m.snr == 200.0 and m.samples == len(fs.feeds)


def test_wrong_state_mapping_is_named(tmp_path: Path) -> None:
    model = vad_like(tmp_path / "vad.onnx")
    fs = feed_set(model, "auto", count=1)
    with pytest.raises(ConfigError, match=r"state \['state<-hidden'\] names inputs/outputs"):
        run_samples(model, fs.feeds[:2], state={"state": "hidden"})


def test_npz_samples_feed_any_input(tmp_path: Path) -> None:
    model = vad_like(tmp_path / "vad.onnx")
    data = tmp_path / "samples"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        np.savez(data / f"{i:02d}.npz", input=rng.random((1, 8), np.float32))
    fs = feed_set(model, data, count=8, role="calibration")
    assert len(fs.feeds) == 2 and "2 of its 4 .npz files (calibration half)" in fs.source
    assert int(fs.feeds[1]["sr"]) == 16000 and fs.feeds[1]["state"].shape == (1, 4)


def yolo_like(path: Path) -> Path:
    """A tiny conv detector with the YOLOv8 export layout: [1, 4 + 2 classes, 16 boxes] on a
    32x32 image (cx, cy in pixels from a sigmoid x 32, w, h x 16, class scores sigmoid)."""
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((6, 3, 8, 8)) * 0.2).astype(np.float32)
    scale = np.array([32, 32, 16, 16, 1, 1], np.float32).reshape(1, 6, 1)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], strides=[8, 8]),
            helper.make_node("Reshape", ["c", "shape"], ["r"]),
            helper.make_node("Sigmoid", ["r"], ["p"]),
            helper.make_node("Mul", ["p", "scale"], ["y"]),
        ],
        "yolo_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 16])],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.array([1, 6, 16], np.int64), "shape"),
            numpy_helper.from_array(scale, "scale"),
        ],
    )
    save_model(graph, path)
    task = DetectionTask(decoder="yolo", boxes_output="y", input_size=(32, 32))
    return store_card(path, ModelCard(task=task))


def test_detection_metric_through_the_pipeline(tmp_path: Path) -> None:
    model = yolo_like(tmp_path / "det.onnx")
    report = optimize(model, {"passes": [{"name": "fp16"}]}, tmp_path / "out")
    assert report.metric == "f1" and report.task is not None and report.task["decoder"] == "yolo"
    f = report.steps[0].fidelity
    assert f is not None and f["task"] == "detection" and 0.0 <= f["f1"] <= 1.0
    assert f["snr"] > 30  # fp16 weights of a small conv
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| f1 | SNR dB |" in text and "detection task: f1" in text
    # The F1 the report gives, computed again by hand from the decoded boxes.
    fs = feed_set(model, "builtin", 16, 1, "evaluation")
    ref = run_samples(model, fs.feeds)
    got = run_samples(report.output, fs.feeds)
    task = DetectionTask(decoder="yolo", boxes_output="y", input_size=(32, 32))
    tp = fp = fn = 0
    for r, c in zip(ref, got, strict=True):
        a, b = task.decode(r), task.decode(c)
        used: set[int] = set()
        for i in range(len(a.boxes)):
            hits = [
                j
                for j in range(len(b.boxes))
                if j not in used
                and a.classes[i] == b.classes[j]
                and _iou(a.boxes[i], b.boxes[j]) >= 0.5
            ]
            if hits:
                used.add(max(hits, key=lambda j: _iou(a.boxes[i], b.boxes[j])))
                tp += 1
            else:
                fn += 1
        fp += len(b.boxes) - len(used)
    assert tp > 0 and abs(f["f1"] - 2 * tp / (2 * tp + fp + fn)) < 0.02


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union) if union > 0 else 0.0


def test_unknown_task_falls_back_to_snr_with_a_warning(
    conv_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        report = optimize(conv_model, {"passes": [{"name": "fp16"}]}, tmp_path / "out")
    assert report.metric == "snr" and report.task is None
    assert any("gives no task" in w for w in report.warnings)
    assert "gives no task" in caplog.text
    f = report.steps[0].fidelity
    assert f is not None and f["task"] == "generic" and 40 < f["snr"] < 200
    ref = [{"y": np.ones((1, 3), np.float32)}]
    noisy = [{"y": np.ones((1, 3), np.float32) * 1.1}]
    assert abs(score_samples(ref, noisy, "y").snr - 20.0) < 1e-4  # 10 log10(3 / 0.03)
    assert load_onnx(conv_model).inputs[0].name == "x"


def test_timing_feeds_take_the_cards_constants(tmp_path: Path) -> None:
    model = load_onnx(vad_like(tmp_path / "vad.onnx"))
    fixed = constant_feeds(model.inputs, card_of(model) or ModelCard())
    assert set(fixed) == {"sr", "state"} and int(fixed["sr"]) == 16000
    assert fixed["sr"].shape == () and fixed["sr"].dtype == np.int64
    assert not fixed["state"].any() and fixed["state"].shape == (1, 4)
    with pytest.raises(ConfigError, match=r"values name no input of the model: \['rate'\]"):
        constant_feeds(model.inputs, ModelCard(values={"rate": 8000}))


def test_each_steps_model_keeps_the_card(tmp_path: Path) -> None:
    model = yolo_like(tmp_path / "det.onnx")
    report = optimize(model, {"passes": [{"name": "fp16"}]}, tmp_path / "out")
    assert card_of(load_onnx(report.output)) == card_of(load_onnx(model))


def test_ocr_models_are_fed_printed_text(make_model: Callable[..., Path]) -> None:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "line_reader",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 48, 160])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 48, 160])],
    )
    path = make_model(graph, "rec.onnx")
    iface = ModelInterface(input_name="x", input_size=(48, 160), layout="nchw")
    lines = feed_set(path, "auto", 4, interface=iface, card=ModelCard(images="text-lines"))
    assert len(lines.feeds) == 4 and "built-in text (evaluation)" in lines.source
    assert "upright lines only" in lines.source and lines.feeds[0]["x"].shape == (1, 3, 48, 160)
    pages = feed_set(path, "builtin", 2, interface=iface, card=ModelCard(images="text-pages"))
    assert "pages" in pages.source
    photos = feed_set(path, "auto", 2, interface=iface)  # no card: photographs, as before
    assert "built-in evaluation set" in photos.source


def test_the_task_decides_the_metric_even_beside_a_mask() -> None:
    from edgeopt.pipeline import default_bound, task_metric
    from edgeopt.tasks import LandmarksTask, SegmentationTask

    mask = ModelInterface(input_name="x", input_size=(8, 8), output_name="seg")
    pose = ModelCard(task=LandmarksTask(output="points", coordinate_scale=8.0))
    assert task_metric(pose, mask) == "nme" and default_bound(pose, mask) == "nme<=0.01"
    seg = ModelCard(task=SegmentationTask())
    assert task_metric(seg, mask) == "iou" and default_bound(seg, mask) == "iou>=0.98"
    assert (
        task_metric(ModelCard(), mask) == "iou" and default_bound(ModelCard(), mask) == "iou>=0.98"
    )
    assert task_metric(ModelCard(), None) == "snr" and default_bound(ModelCard(), None) == "snr>=30"
