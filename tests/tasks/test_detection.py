"""The detection task: tiny ONNX detectors decoded to known boxes, NMS, and F1 by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from pydantic import ValidationError

from _helpers import save_model
from edgeopt.errors import ConfigError
from edgeopt.tasks import DetectionTask, SsdAnchors, parse_task
from edgeopt.tasks.detection import box_iou, nms


def constant_model(path: Path, outputs: dict[str, np.ndarray]) -> Path:
    """A model whose outputs are the given constants + 0 * sum(input): the graph really runs."""
    nodes = [helper.make_node("ReduceSum", ["image"], ["total"], keepdims=0)]
    nodes.append(helper.make_node("Mul", ["total", "zero"], ["nothing"]))
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    infos = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"{name}_value"))
        nodes.append(helper.make_node("Add", [f"{name}_value", "nothing"], [name]))
        infos.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes,
        "constant_detector",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        infos,
        inits,
    )
    return save_model(graph, path)


def run(path: Path) -> dict[str, np.ndarray]:
    """One sample's outputs of the model on a random image."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    image = np.random.default_rng(0).random((1, 3, 8, 8), np.float32)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {"image": image}), strict=True))


# YOLO rows on a 64 (high) x 128 (wide) input: cx, cy, w, h in pixels, then 2 class scores.
YOLO_ROWS = np.array(
    [
        [32, 16, 32, 16, 0.9, 0.1],  # kept: class 0
        [34, 16, 32, 16, 0.8, 0.0],  # IoU 30*16 / (2*512 - 480) = 0.88 with the first: gone
        [34, 16, 32, 16, 0.0, 0.7],  # the same box, class 1: per-class NMS keeps it
        [100, 40, 10, 10, 0.3, 0.2],  # below the score threshold
        *[[64, 32, 8, 8, 0.0, 0.0]] * 4,  # more boxes than channels: [1, 6, 8] is unambiguous
    ],
    np.float32,
)


def yolo_task(**fields: object) -> DetectionTask:
    return DetectionTask(decoder="yolo", boxes_output="output0", input_size=(64, 128), **fields)


def test_yolo_onnx_detector_decodes_to_the_expected_boxes(tmp_path: Path) -> None:
    outputs = run(constant_model(tmp_path / "yolo.onnx", {"output0": YOLO_ROWS.T[None]}))
    assert outputs["output0"].shape == (1, 6, 8)
    found = yolo_task().decode(outputs)
    # (cx -/+ w/2) / 128, (cy -/+ h/2) / 64
    np.testing.assert_allclose(
        found.boxes, [[0.125, 0.125, 0.375, 0.375], [18 / 128, 0.125, 50 / 128, 0.375]]
    )
    np.testing.assert_allclose(found.scores, [0.9, 0.7], rtol=1e-6)
    np.testing.assert_array_equal(found.classes, [0, 1])
    # The channels-last layout [1, N, 4+C] decodes the same; so does naming it.
    last = {"output0": YOLO_ROWS[None]}
    np.testing.assert_allclose(yolo_task().decode(last).boxes, found.boxes)
    np.testing.assert_allclose(yolo_task(channels_first=False).decode(last).boxes, found.boxes)
    # Fewer boxes than channels: [1, 6, 4] reads as channels-last unless told.
    few = {"output0": YOLO_ROWS[None, :4].transpose(0, 2, 1)}
    with pytest.raises(ConfigError, match=r"'output0' has shape \(1, 6, 4\).*channels_first"):
        yolo_task().decode(few)  # read as 6 boxes of 4 values: no class scores
    np.testing.assert_allclose(yolo_task(channels_first=True).decode(few).boxes, found.boxes)
    assert len(yolo_task(max_boxes=1).decode(outputs)) == 1
    assert len(yolo_task(score_threshold=0.95).decode(outputs)) == 0


# SSD: a 16x16 input, one stride-8 layer: 2x2 cells x 2 anchors, fixed size, centres at 0.25/0.75.
SSD_ANCHORS = SsdAnchors(
    input_size_height=16,
    input_size_width=16,
    num_layers=1,
    min_scale=0.1484375,
    max_scale=0.75,
    strides=(8,),
    fixed_anchor_size=True,
)


def ssd_task(**fields: object) -> DetectionTask:
    settings: dict[str, object] = {
        "decoder": "ssd",
        "boxes_output": "regressors",
        "scores_output": "classificators",
        "input_size": (16, 16),
        "anchors": SSD_ANCHORS,
        "num_coords": 6,
        "box_scale": (16.0, 16.0, 16.0, 16.0),
    }
    return DetectionTask.model_validate(settings | fields)


def ssd_outputs() -> dict[str, np.ndarray]:
    boxes = np.zeros((1, 8, 6), np.float32)  # 4 box values + one (x, y) keypoint per anchor
    logits = np.full((1, 8, 1), -5.0, np.float32)  # sigmoid(-5) = 0.0067: dropped
    boxes[0, 2] = [1.6, -0.8, 8, 4, 0.3, 0.3]  # anchor (0.75, 0.25): x + 0.1, y - 0.05
    logits[0, 2] = 2.0
    boxes[0, 7] = [0, 0, 4, 4, 0, 0]  # anchor (0.75, 0.75), a quarter of the input wide
    logits[0, 7] = 500.0  # clipped to 100 before the sigmoid
    return {"regressors": boxes, "classificators": logits}


def test_ssd_onnx_detector_decodes_to_the_expected_boxes(tmp_path: Path) -> None:
    outputs = run(constant_model(tmp_path / "ssd.onnx", ssd_outputs()))
    found = ssd_task().decode(outputs)
    # Anchor 7: centre (0.75, 0.75), w = h = 4 / 16. Anchor 2: centre (0.75 + 1.6 / 16,
    # 0.25 - 0.8 / 16) = (0.85, 0.2), w = 8 / 16, h = 4 / 16.
    np.testing.assert_allclose(
        found.boxes,
        [[0.625, 0.625, 0.875, 0.875], [0.6, 0.075, 1.1, 0.325]],
        atol=1e-6,
    )
    np.testing.assert_allclose(found.scores, [1.0, 1 / (1 + math.exp(-2.0))], rtol=1e-6)
    np.testing.assert_array_equal(found.classes, [0, 0])


def test_ssd_yxhw_order_exponential_sizes_and_raw_scores() -> None:
    outputs = ssd_outputs()
    raw = outputs["regressors"]
    raw[0, 2, :4] = [-0.8, 1.6, 0.0, math.log(2) * 16]  # y, x, h, w: h = anchor, w = 2 anchor
    task = ssd_task(
        reverse_output_order=False, apply_exponential_on_box_size=True, sigmoid_score=False
    )
    outputs["classificators"][0, 7] = 0.2  # below the threshold as a raw score
    outputs["classificators"][0, 2] = 0.6
    found = task.decode(outputs)
    # centre (0.85, 0.2), w = exp(log 2) * 1 = 2, h = exp(0) * 1 = 1
    np.testing.assert_allclose(found.boxes, [[-0.15, -0.3, 1.85, 0.7]], atol=1e-5)
    np.testing.assert_allclose(found.scores, [0.6], rtol=1e-6)
    # A box offset inside the row, and boxes of negative size dropped as MediaPipe does.
    shifted = {"regressors": np.roll(ssd_outputs()["regressors"], 2, axis=2)}
    shifted["classificators"] = ssd_outputs()["classificators"]
    assert len(ssd_task(box_coord_offset=2).decode(shifted)) == 2
    negative = ssd_outputs()
    negative["regressors"][0, 7, 2] = -4.0
    assert len(ssd_task().decode(negative)) == 1


def test_nms_suppresses_above_the_iou_per_class() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [20, 20, 30, 30]], float)
    scores = np.array([0.5, 0.9, 0.8, 0.7])
    classes = np.array([0, 0, 1, 0])
    # Box 1 (best) suppresses box 0: IoU 90 / 110 = 0.82; box 2 is another class.
    np.testing.assert_array_equal(nms(boxes, scores, classes, 0.45), [1, 2, 3])
    np.testing.assert_array_equal(nms(boxes, scores, classes, 0.85), [1, 2, 3, 0])
    assert box_iou(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(90 / 110)


def yolo_sample(*rows: tuple[float, ...]) -> dict[str, np.ndarray]:
    """A YOLO output [1, 6, N] on a 128 x 128 input from (cx, cy, w, h, class) rows."""
    out = np.zeros((1, 6, 8), np.float32)
    for i, (cx, cy, w, h, cls) in enumerate(rows):
        out[0, :4, i] = cx, cy, w, h
        out[0, 4 + int(cls), i] = 0.9
    return {"output0": out}


def test_f1_of_two_reference_boxes_one_matched_one_missed_one_extra() -> None:
    task = DetectionTask(decoder="yolo", boxes_output="output0", input_size=(128, 128))
    reference = [yolo_sample((20, 20, 20, 20, 0), (80, 80, 20, 20, 0))]
    # A moved 5 px: IoU (15 * 20) / (2 * 400 - 300) = 0.6; B missing; an extra box C.
    candidate = [yolo_sample((25, 20, 20, 20, 0), (20, 100, 10, 10, 1))]
    got = task.score(reference, candidate)
    assert got == pytest.approx(
        {"f1": 2 * 1 / (2 + 1 + 1), "precision": 0.5, "recall": 0.5, "boxes": 2.0, "box_iou": 0.6}
    )
    assert all(type(v) is float for v in got.values())
    # Moved 10 px: IoU 200 / 600 = 1/3 < 0.5, no match; a lower match_iou matches it.
    far = [yolo_sample((30, 20, 20, 20, 0), (80, 80, 20, 20, 0))]
    assert task.score(reference, far)["f1"] == pytest.approx(2 / 4)
    loose = task.model_copy(update={"match_iou": 0.3}).score(reference, far)
    assert loose["f1"] == 1.0
    assert loose["box_iou"] == pytest.approx((1 / 3 + 1) / 2)
    # The same box of another class does not match.
    other = [yolo_sample((20, 20, 20, 20, 1), (80, 80, 20, 20, 0))]
    assert task.score(reference, other)["f1"] == pytest.approx(2 / 4)


def test_no_boxes_anywhere_agree() -> None:
    task = DetectionTask(decoder="yolo", boxes_output="output0", input_size=(128, 128))
    empty = [yolo_sample(), yolo_sample()]
    assert task.score(empty, empty) == {
        "f1": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "boxes": 0.0,
        "box_iou": 1.0,
    }
    one = [yolo_sample((20, 20, 20, 20, 0)), yolo_sample()]
    assert task.score(one, empty) == pytest.approx(
        {"f1": 0.0, "precision": 1.0, "recall": 0.0, "boxes": 1.0, "box_iou": 1.0}
    )


def test_bad_shapes_and_missing_outputs_raise_naming_the_output() -> None:
    with pytest.raises(ConfigError, match=r"'output0' has shape \(1, 3, 2, 2\)"):
        yolo_task().decode({"output0": np.zeros((1, 3, 2, 2), np.float32)})
    with pytest.raises(ConfigError, match=r"'output0' has shape \(1, 4, 10\)"):
        yolo_task().decode({"output0": np.zeros((1, 4, 10), np.float32)})
    with pytest.raises(ConfigError, match=r"'output0'.*missing"):
        yolo_task().decode({"boxes": np.zeros((1, 6, 4), np.float32)})
    good = ssd_outputs()
    with pytest.raises(ConfigError, match=r"'regressors' has shape \(1, 7, 6\).*\[1, 8, 6\]"):
        ssd_task().decode({**good, "regressors": good["regressors"][:, :7]})
    with pytest.raises(ConfigError, match=r"'classificators' has shape \(1, 8, 0\)"):
        ssd_task().decode({**good, "classificators": np.zeros((1, 8, 0), np.float32)})
    with pytest.raises(ConfigError, match=r"sample 1: .*'classificators'.*missing"):
        ssd_task().score([good, good], [good, {"regressors": good["regressors"]}])
    with pytest.raises(ConfigError, match="1 samples"):
        ssd_task().score([good], [good, good])


def test_decoder_fields_are_checked() -> None:
    with pytest.raises(ValidationError, match="ssd decoder needs anchors"):
        DetectionTask(decoder="ssd", boxes_output="b", scores_output="s", input_size=(8, 8))
    with pytest.raises(ValidationError, match="anchors apply only to the ssd decoder"):
        yolo_task(anchors=SSD_ANCHORS)
    with pytest.raises(ConfigError, match=r"detection: .*ssd decoder needs"):
        parse_task(
            {"kind": "detection", "decoder": "ssd", "boxes_output": "b", "input_size": [8, 8]}
        )
    task = parse_task(ssd_task().model_dump())
    assert task == ssd_task()
    assert "ssd decoding of 'regressors' + 'classificators'" in task.describe()
