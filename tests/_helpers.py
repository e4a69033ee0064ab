"""Helpers for the tests: tiny ONNX graphs built in code, and their numpy references."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
OPSET = 17


def save_model(graph: onnx.GraphProto, path: Path, opsets: dict[str, int] | None = None) -> Path:
    """Write a graph as an ONNX model (default opset 17) and return its path."""
    imports = [helper.make_opsetid(d, v) for d, v in (opsets or {"": OPSET}).items()]
    model = helper.make_model(graph, opset_imports=imports, producer_name="edgeopt-tests")
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def conv_weights(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of a 3x3 conv, 3 -> 4 channels."""
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
        rng.standard_normal(4).astype(np.float32),
    )


def conv_relu_reference(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Numpy reference of Conv(pad 1, stride 1) + bias + Relu, NCHW."""
    n, _, h, wd = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, w.shape[0], h, wd), np.float64)
    for i in range(3):
        for j in range(3):
            patch = xp[:, :, i : i + h, j : j + wd]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return np.maximum(out + b[None, :, None, None], 0).astype(np.float32)


def make_red_model(path: Path, size: tuple[int, int] = (32, 32)) -> Path:
    """A segmentation model whose person probability is sigmoid(40 * (red - 0.5))."""
    h, w = size
    weights = numpy_helper.from_array(np.array([[40.0], [0.0], [0.0]], np.float32), "w")
    bias = numpy_helper.from_array(np.array([-20.0], np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input_1", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["logit"]),
            helper.make_node("Sigmoid", ["logit"], ["prob"]),
        ],
        "red_person",
        [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, [1, h, w, 3])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, h, w, 1])],
        [weights, bias],
    )
    return save_model(graph, path)


IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def make_red_softmax_nchw(path: Path, size: tuple[int, int] = (32, 32)) -> Path:
    """NCHW, ImageNet-normalized RGB in, softmax over 2 channels [background, person] out.

    Person logit = 40 * (r - t) with r the normalized red channel and t the normalized value
    of red 127.5: red pixels are the person only when the input is normalized as declared.
    """
    h, w = size
    t = (127.5 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]
    weights = np.zeros((2, 3, 1, 1), np.float32)
    weights[1, 0] = 40.0
    bias = np.array([0.0, -40.0 * t], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "w", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["prob"], axis=1),
        ],
        "red_softmax_nchw",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 2, h, w])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
    )
    return save_model(graph, path, {"": 13})


def make_red_logits_nhwc_bgr(path: Path, size: tuple[int, int] = (32, 32)) -> Path:
    """NHWC, BGR in [0, 1] in, 2-channel logits [background, person] out (no softmax), opset 11.

    Person logit = 40 * (red - 0.5), background logit 0; red is channel 2 in BGR.
    """
    h, w = size
    weights = np.zeros((3, 2), np.float32)
    weights[2, 1] = 40.0
    bias = np.array([0.0, -20.0], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["frame", "w"], ["mm"]),
            helper.make_node("Add", ["mm", "b"], ["logits"]),
        ],
        "red_logits_nhwc",
        [helper.make_tensor_value_info("frame", TensorProto.FLOAT, [1, h, w, 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, h, w, 2])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
    )
    return save_model(graph, path, {"": 11})


def _spin(cpu: int, seconds: float) -> None:
    os.sched_setaffinity(0, {cpu})
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


@contextmanager
def one_core_taken(seconds: float = 30.0) -> Iterator[None]:
    """Another process spinning on one of this process's CPUs while the block runs."""
    proc = mp.get_context("spawn").Process(
        target=_spin, args=(max(os.sched_getaffinity(0)), seconds), daemon=True
    )
    proc.start()
    time.sleep(0.3)  # started and spinning
    try:
        yield
    finally:
        proc.terminate()
        proc.join()


def store_card(path: Path, card: object) -> Path:
    """Write a `ModelCard` into the model file at ``path`` (as the zoo does); returns it."""
    from edgeopt.card import CARD_KEY, ModelCard

    assert isinstance(card, ModelCard)
    model = onnx.load(str(path))
    helper.set_model_props(model, {CARD_KEY: card.to_json()})
    onnx.save(model, str(path))
    return path
