"""The model interface: pre-processing by hand, outputs of every kind, inference from graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from _helpers import save_model
from edgeopt.artifact import load_onnx
from edgeopt.errors import ConfigError
from edgeopt.interface import ModelInterface, infer_interface, interface_from_options, load_card

IMAGENET = {"mean": (123.675, 116.28, 103.53), "std": (58.395, 57.12, 57.375)}


def test_preprocess_matches_a_hand_computation() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)  # BGR, already the input size
    iface = ModelInterface(input_name="x", input_size=(16, 24), layout="nchw", **IMAGENET)
    x = iface.preprocess(frame, "BGR")
    rgb = frame[..., ::-1].astype(np.float64)
    want = ((rgb - IMAGENET["mean"]) / IMAGENET["std"]).transpose(2, 0, 1)[None]
    np.testing.assert_allclose(x, want, rtol=1e-5, atol=1e-5)
    bgr = ModelInterface(input_name="x", input_size=(16, 24), channel_order="bgr")
    np.testing.assert_allclose(bgr.preprocess(frame, "BGR")[0], frame / 255.0, atol=1e-6)
    buf = np.empty((1, 3, 16, 24), np.float32)
    assert iface.preprocess(frame, "BGR", buf) is buf  # the app's reused buffer


def test_outputs_of_every_kind_become_the_same_probability() -> None:
    rng = np.random.default_rng(1)
    logit = rng.normal(0, 3, (8, 8)).astype(np.float32)  # person minus background
    p = 1 / (1 + np.exp(-logit))
    two = np.stack([np.zeros_like(logit), logit])  # softmax of [0, l] = sigmoid(l) for ch 1
    base = {"input_name": "x", "input_size": (8, 8), "output_name": "y"}
    cases = [
        (dict(activation="none", output_layout="nhwc"), p[None, ..., None]),
        (dict(activation="sigmoid", output_layout="nchw"), logit[None, None]),
        (dict(activation="logits", output_layout="nchw", person_channel=1), two[None]),
        (dict(activation="logits", output_layout="nhwc", person_channel=1), two.T[None]),
        (dict(activation="softmax", output_layout="nchw", person_channel=1), two[None] + 2.0),
    ]
    for fields, output in cases:
        got = ModelInterface(**base, **fields).person_probability(output)
        expected = p
        if fields["output_layout"] == "nhwc" and fields.get("person_channel") == 1:
            expected = p.T  # the transposed [W,H,2] case holds the map transposed
        np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=str(fields))
    # A probability output is clipped to [0, 1] into a new array; the output is left as it was.
    raw = np.array([[-0.5, 0.25], [1.5, 1.0]], np.float32)[None, None]
    kept = raw.copy()
    got = ModelInterface(**base, activation="none", output_layout="nchw").person_probability(raw)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [[0.0, 0.25], [1.0, 1.0]])
    np.testing.assert_array_equal(raw, kept)


def _seg_model(tmp_path: Path, last: str, channels: int, nchw: bool, opset: int = 17) -> Path:
    shape_in = [1, 3, 16, 16] if nchw else [1, 16, 16, 3]
    w = np.random.default_rng(0).normal(size=(channels, 3, 1, 1)).astype(np.float32)
    nodes = []
    x = "image"
    if not nchw:
        nodes.append(helper.make_node("Transpose", [x], ["xt"], perm=[0, 3, 1, 2]))
        x = "xt"
    nodes.append(helper.make_node("Conv", [x, "w"], ["c"]))
    y = "c"
    if last == "Softmax":
        nodes.append(helper.make_node("Softmax", [y], ["s"], axis=1))
        y = "s"
    elif last == "Sigmoid":
        nodes.append(helper.make_node("Sigmoid", [y], ["s"]))
        y = "s"
    if not nchw:
        nodes.append(helper.make_node("Transpose", [y], ["out"], perm=[0, 2, 3, 1]))
    else:
        nodes.append(helper.make_node("Identity", [y], ["out"]))
    shape_out = [1, channels, 16, 16] if nchw else [1, 16, 16, channels]
    graph = helper.make_graph(
        nodes,
        "seg",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape_in)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape_out)],
        [numpy_helper.from_array(w, "w")],
    )
    return save_model(graph, tmp_path / f"{last}-{channels}-{nchw}.onnx", {"": opset})


@pytest.mark.parametrize(
    ("last", "channels", "nchw", "activation", "person", "layout"),
    [
        ("Softmax", 2, True, "none", 1, "nchw"),
        ("Conv", 2, False, "logits", 1, "nhwc"),
        ("Sigmoid", 1, False, "none", 0, "nhwc"),
        ("Conv", 1, True, "logits", 0, "nchw"),
    ],
)
def test_interface_inferred_from_the_graph(
    tmp_path: Path,
    last: str,
    channels: int,
    nchw: bool,
    activation: str,
    person: int,
    layout: str,
) -> None:
    iface = infer_interface(load_onnx(_seg_model(tmp_path, last, channels, nchw)))
    assert iface is not None
    assert (iface.activation, iface.person_channel, iface.output_layout) == (
        activation,
        person,
        layout,
    )
    assert iface.layout == ("nchw" if nchw else "nhwc") and iface.input_size == (16, 16)


def test_overrides_cards_and_flags(tmp_path: Path, conv_model: Path) -> None:
    card = tmp_path / "card.yaml"
    card.write_text("mean: [123.675, 116.28, 103.53]\nstd: [58.395, 57.12, 57.375]\n")
    fields = interface_from_options(card, order="BGR", activation="softmax", person_channel=1)
    assert fields["channel_order"] == "bgr" and fields["mean"] == IMAGENET["mean"]
    path = _seg_model(tmp_path, "Conv", 2, True)
    iface = infer_interface(load_onnx(path), fields)
    assert iface is not None and iface.activation == "softmax" and iface.std == IMAGENET["std"]
    (tmp_path / "bad.yaml").write_text("means: [1, 2, 3]\n")
    with pytest.raises(ConfigError, match=r"unknown model card field\(s\) \['means'\]"):
        load_card(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="--input-mean wants three numbers"):
        interface_from_options(mean="1,2")
    with pytest.raises(ConfigError, match="std must be positive"):
        infer_interface(load_onnx(path), {"std": (1.0, 0.0, 1.0)})
    # A model whose input is no image has no interface, and cannot be given one.
    assert infer_interface(load_onnx(conv_model)) is not None  # [1,3,8,8] is an image
    with pytest.raises(ConfigError, match="no output named 'nope'"):
        infer_interface(load_onnx(path), {"output_name": "nope"})
