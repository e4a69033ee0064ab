"""Tests of the TFLite -> ONNX importer.

Tiny models are built in code with the ``tflite`` package's flatbuffer builders and checked
against NumPy references (and against LiteRT, TFLite's own runtime, when it is installed);
the MediaPipe selfie models are checked against LiteRT and on real photographs; a fuzz test
feeds corrupted copies of the real model.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import flatbuffers
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tflite
from flatbuffers import flexbuffers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeopt.errors import ConfigError, EdgeoptError, ModelLoadError, UnsupportedOpError
from edgeopt.frontends._tflite_ops import same_padding
from edgeopt.frontends.tflite import convert_tflite

try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # the reference runtime is optional; tests that need it skip
    Interpreter = None

F32, F16 = tflite.TensorType.FLOAT32, tflite.TensorType.FLOAT16
SAME, VALID = tflite.Padding.SAME, tflite.Padding.VALID
ACT = tflite.ActivationFunctionType
OP = tflite.BuiltinOperator
needs_litert = pytest.mark.skipif(Interpreter is None, reason="ai-edge-litert is not installed")


# -- a tiny TFLite model builder ----------------------------------------------------------


@dataclass
class T:
    """A tensor of a tiny test model; ``data`` makes it a constant."""

    name: str
    shape: list[int]
    dtype: int = F32
    data: np.ndarray | None = None


@dataclass
class Op:
    """An operator of a tiny test model: a builtin code or a custom code name."""

    code: int | str
    inputs: list[int]
    outputs: list[int]
    options: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    custom: bytes = b""


def _int_vector(b: flatbuffers.Builder, values: list[int]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependInt32(v)
    return b.EndVector()


def _offset_vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _bytes_vector(b: flatbuffers.Builder, data: bytes) -> int:
    # 16-byte alignment, as TFLite runtimes expect of constant buffers.
    b.StartVector(1, len(data), 16)
    b.head = b.head - len(data)
    b.Bytes[b.head : b.head + len(data)] = data
    b.vectorNumElems = len(data)
    return b.EndVector()


def build_tflite(tensors: list[T], ops: list[Op], inputs: list[int], outputs: list[int]) -> bytes:
    """Serialize a one-subgraph TFLite model."""
    b = flatbuffers.Builder(1024)
    buffers, buffer_of = [], {}
    for data in [None] + [t.data for t in tensors]:
        vec = _bytes_vector(b, data.tobytes()) if data is not None else None
        tflite.BufferStart(b)
        if vec is not None:
            tflite.BufferAddData(b, vec)
        buffers.append(tflite.BufferEnd(b))
    for i, t in enumerate(tensors):
        buffer_of[i] = i + 1 if t.data is not None else 0
    tensor_offsets = []
    for i, t in enumerate(tensors):
        name, shape = b.CreateString(t.name), _int_vector(b, t.shape)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, t.dtype)
        tflite.TensorAddBuffer(b, buffer_of[i])
        tflite.TensorAddName(b, name)
        tensor_offsets.append(tflite.TensorEnd(b))
    codes = list(dict.fromkeys(op.code for op in ops))
    code_offsets = []
    for code in codes:
        custom = b.CreateString(code) if isinstance(code, str) else None
        builtin = OP.CUSTOM if isinstance(code, str) else code
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(builtin, 127))
        tflite.OperatorCodeAddBuiltinCode(b, builtin)
        if custom is not None:
            tflite.OperatorCodeAddCustomCode(b, custom)
        tflite.OperatorCodeAddVersion(b, 1)
        code_offsets.append(tflite.OperatorCodeEnd(b))
    op_offsets = []
    for op in ops:
        ins, outs = _int_vector(b, op.inputs), _int_vector(b, op.outputs)
        opts = None
        if op.options:
            getattr(tflite, f"{op.options}Start")(b)
            for key, value in op.fields.items():
                getattr(tflite, f"{op.options}Add{key}")(b, value)
            opts = getattr(tflite, f"{op.options}End")(b)
        custom = _bytes_vector(b, op.custom) if op.custom else None
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index(op.code))
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        if opts is not None:
            tflite.OperatorAddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, op.options))
            tflite.OperatorAddBuiltinOptions(b, opts)
        if custom is not None:
            tflite.OperatorAddCustomOptions(b, custom)
        op_offsets.append(tflite.OperatorEnd(b))
    t_vec, o_vec = _offset_vector(b, tensor_offsets), _offset_vector(b, op_offsets)
    in_vec, out_vec, name = _int_vector(b, inputs), _int_vector(b, outputs), b.CreateString("main")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, t_vec)
    tflite.SubGraphAddInputs(b, in_vec)
    tflite.SubGraphAddOutputs(b, out_vec)
    tflite.SubGraphAddOperators(b, o_vec)
    tflite.SubGraphAddName(b, name)
    subgraph = tflite.SubGraphEnd(b)
    sub_vec, code_vec = _offset_vector(b, [subgraph]), _offset_vector(b, code_offsets)
    buf_vec, desc = _offset_vector(b, buffers), b.CreateString("edgeopt test model")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, code_vec)
    tflite.ModelAddSubgraphs(b, sub_vec)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, buf_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def convert_bytes(tmp_path: Path, data: bytes, **kwargs: Any) -> onnx.ModelProto:
    path = tmp_path / "model.tflite"
    path.write_bytes(data)
    return convert_tflite(path, **kwargs)


def run_onnx(model: onnx.ModelProto, *feeds: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return list(session.run(None, dict(zip(names, feeds, strict=True))))


def run_litert(data: bytes, *feeds: np.ndarray) -> list[np.ndarray]:
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    for detail, x in zip(interpreter.get_input_details(), feeds, strict=True):
        interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


def rand(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def op_types(model: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in model.graph.node]


# -- NumPy references ---------------------------------------------------------------------


def tf_same_pads(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    out = -(-size // s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def np_conv(
    x: np.ndarray,
    w: np.ndarray,
    bias: np.ndarray,
    stride: tuple[int, int],
    pads: tuple[int, int, int, int],
    dil: tuple[int, int] = (1, 1),
    groups: int = 1,
) -> np.ndarray:
    """NHWC convolution; w is [Cout, kh, kw, Cin/groups]; pads (top, left, bottom, right)."""
    xp = np.pad(x, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3]), (0, 0)))
    cout, kh, kw, cg = w.shape
    oh = (xp.shape[1] - (kh - 1) * dil[0] - 1) // stride[0] + 1
    ow = (xp.shape[2] - (kw - 1) * dil[1] - 1) // stride[1] + 1
    out = np.zeros((x.shape[0], oh, ow, cout), np.float64)
    per = cout // groups
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                r, c = i * dil[0], j * dil[1]
                patch = xp[:, r : r + (oh - 1) * stride[0] + 1 : stride[0]]
                patch = patch[
                    :, :, c : c + (ow - 1) * stride[1] + 1 : stride[1], g * cg : g * cg + cg
                ]
                out[..., g * per : (g + 1) * per] += patch @ w[g * per : (g + 1) * per, i, j].T
    return out + bias


def np_resize(x: np.ndarray, oh: int, ow: int, align: bool, half: bool) -> np.ndarray:
    """TensorFlow's (legacy) ResizeBilinear."""

    def axis(out: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = (size - 1) / (out - 1) if align and out > 1 else size / out
        o = np.arange(out, dtype=np.float64)
        src = (o + 0.5) * scale - 0.5 if half else o * scale
        low = np.floor(src)
        frac = src - low
        return (
            np.clip(low, 0, size - 1).astype(int),
            np.clip(low + 1, 0, size - 1).astype(int),
            frac,
        )

    y0, y1, fy = axis(oh, x.shape[1])
    x0, x1, fx = axis(ow, x.shape[2])
    fy, fx = fy[None, :, None, None], fx[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    bottom = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    return top * (1 - fy) + bottom * fy


# -- padding rule -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 5, 7, 8, 13, 16])
@pytest.mark.parametrize(
    ("k", "s", "d"), [(1, 1, 1), (3, 1, 1), (3, 2, 1), (5, 2, 1), (3, 1, 2), (2, 2, 1), (4, 3, 1)]
)
def test_same_padding_follows_tensorflow(size: int, k: int, s: int, d: int) -> None:
    before, after = same_padding(size, k, s, d)
    assert (before, after) == tf_same_pads(size, k, s, d)
    assert after - before in (0, 1)  # the odd pixel goes to the bottom/right
    assert (size + before + after - (k - 1) * d - 1) // s + 1 == -(-size // s)


# -- converters on tiny models ------------------------------------------------------------


def conv_model(
    x_shape: tuple[int, ...],
    w: np.ndarray,
    b: np.ndarray,
    padding: int,
    stride: int,
    act: int,
    *,
    fp16: bool = False,
    depthwise: bool = False,
) -> bytes:
    out_c = w.shape[3] if depthwise else w.shape[0]
    oh = -(-x_shape[1] // stride) if padding == SAME else (x_shape[1] - w.shape[1]) // stride + 1
    ow = -(-x_shape[2] // stride) if padding == SAME else (x_shape[2] - w.shape[2]) // stride + 1
    tensors = [
        T("x", list(x_shape)),
        T("w", list(w.shape)),
        T("b", [len(b)]),
        T("y", [x_shape[0], oh, ow, out_c]),
    ]
    ops = []
    if fp16:
        tensors += [
            T("w16", list(w.shape), F16, w.astype(np.float16)),
            T("b16", [len(b)], F16, b.astype(np.float16)),
        ]
        ops += [Op(OP.DEQUANTIZE, [4], [1]), Op(OP.DEQUANTIZE, [5], [2])]
    else:
        tensors[1].data, tensors[2].data = w, b
    fields = {
        "Padding": padding,
        "StrideW": stride,
        "StrideH": stride,
        "FusedActivationFunction": act,
    }
    fields |= {"DilationWFactor": 1, "DilationHFactor": 1}
    if depthwise:
        fields["DepthMultiplier"] = out_c // x_shape[3]
        ops.append(Op(OP.DEPTHWISE_CONV_2D, [0, 1, 2], [3], "DepthwiseConv2DOptions", fields))
    else:
        ops.append(Op(OP.CONV_2D, [0, 1, 2], [3], "Conv2DOptions", fields))
    return build_tflite(tensors, ops, [0], [3])


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_conv_same_padding_with_fused_relu6(tmp_path: Path, layout: str) -> None:
    x, w, b = rand(1, 7, 9, 3), rand(4, 3, 3, 3, seed=1), rand(4, seed=2)
    data = conv_model(x.shape, w, b, SAME, 2, ACT.RELU6)
    model = convert_bytes(tmp_path, data, layout=layout)
    feed = x if layout == "nhwc" else x.transpose(0, 3, 1, 2).copy()
    (y,) = run_onnx(model, feed)
    if layout == "nchw":
        y = y.transpose(0, 2, 3, 1)
        assert "Transpose" not in op_types(model)
    else:
        assert op_types(model).count("Transpose") == 2
    pads = (*tf_same_pads(7, 3, 2), *tf_same_pads(9, 3, 2))
    ref = np.clip(np_conv(x, w, b, (2, 2), (pads[0], pads[2], pads[1], pads[3])), 0, 6)
    assert y.shape == (1, 4, 5, 4)
    np.testing.assert_allclose(y, ref, atol=1e-5)
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    assert attrs["pads"] == [1, 1, 1, 1]  # TF SAME, 7 -> 4 and 9 -> 5 with k=3 s=2
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["y"]
    if Interpreter is not None:
        np.testing.assert_allclose(y, run_litert(data, x)[0], atol=1e-5)


def test_conv_asymmetric_same_padding_goes_bottom_right(tmp_path: Path) -> None:
    x, w, b = rand(1, 8, 8, 2), rand(3, 3, 3, 2, seed=3), rand(3, seed=4)
    model = convert_bytes(tmp_path, conv_model(x.shape, w, b, SAME, 2, ACT.NONE))
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    assert attrs["pads"] == [0, 0, 1, 1]
    (y,) = run_onnx(model, x)
    np.testing.assert_allclose(y, np_conv(x, w, b, (2, 2), (0, 0, 1, 1)), atol=1e-5)


@pytest.mark.parametrize("act", [ACT.NONE, ACT.RELU, ACT.RELU_N1_TO_1, ACT.TANH])
def test_depthwise_conv_valid_with_multiplier(tmp_path: Path, act: int) -> None:
    x, w, b = rand(1, 6, 5, 3), rand(1, 3, 3, 6, seed=5), rand(6, seed=6)
    data = conv_model(x.shape, w, b, VALID, 1, act, depthwise=True)
    (y,) = run_onnx(convert_bytes(tmp_path, data), x)
    w_grouped = w[0].transpose(2, 0, 1)[..., None]  # [C*M, kh, kw, 1]
    ref = np_conv(x, w_grouped, b, (1, 1), (0, 0, 0, 0), groups=3)
    ref = {ACT.NONE: ref, ACT.RELU: np.maximum(ref, 0), ACT.TANH: np.tanh(ref)}.get(
        act, np.clip(ref, -1, 1)
    )
    np.testing.assert_allclose(y, ref, atol=1e-5)
    # TFLite's kernels clamp only for the RELU family and silently skip a fused TANH, which
    # its converter never emits; the schema's meaning is what the importer follows.
    if Interpreter is not None and act != ACT.TANH:
        np.testing.assert_allclose(y, run_litert(data, x)[0], atol=1e-5)


def test_fp16_dequantize_folds_into_fp32_initializers(tmp_path: Path) -> None:
    x, w, b = rand(1, 5, 5, 2), rand(2, 1, 1, 2, seed=7), rand(2, seed=8)
    model = convert_bytes(tmp_path, conv_model(x.shape, w, b, VALID, 1, ACT.NONE, fp16=True))
    assert {init.data_type for init in model.graph.initializer} == {onnx.TensorProto.FLOAT}
    assert "Cast" not in op_types(model) and "DequantizeLinear" not in op_types(model)
    (y,) = run_onnx(model, x)
    w16, b16 = w.astype(np.float16).astype(np.float32), b.astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(y, np_conv(x, w16, b16, (1, 1), (0, 0, 0, 0)), atol=1e-5)


def _transpose_conv_model(
    x_shape: tuple[int, ...], w: np.ndarray, b: np.ndarray, padding: int, stride: int
) -> tuple[bytes, tuple[int, int]]:
    oh = x_shape[1] * stride if padding == 1 else (x_shape[1] - 1) * stride + w.shape[1]
    ow = x_shape[2] * stride if padding == 1 else (x_shape[2] - 1) * stride + w.shape[2]
    tensors = [T("x", list(x_shape)), T("w", list(w.shape), data=w), T("b", [len(b)], data=b)]
    tensors.append(T("y", [1, oh, ow, w.shape[0]]))
    custom = struct.pack("<3i", padding, stride, stride)
    op = Op("Convolution2DTransposeBias", [0, 1, 2], [3], custom=custom)
    return build_tflite(tensors, [op], [0], [3]), (oh, ow)


@pytest.mark.parametrize(("k", "padding"), [(1, 1), (2, 1), (3, 1), (4, 1), (3, 2)])
def test_mediapipe_transpose_conv_bias(tmp_path: Path, k: int, padding: int) -> None:
    x, w, b = rand(1, 4, 5, 3), rand(2, k, k, 3, seed=9), rand(2, seed=10)
    data, (oh, ow) = _transpose_conv_model(x.shape, w, b, padding, 2)
    (y,) = run_onnx(convert_bytes(tmp_path, data), x)
    # Scatter every input pixel, then crop as TFLite does: the odd row comes off the bottom,
    # and rows that no tap reaches (kernel smaller than stride) get the bias only.
    full = np.zeros((1, max(3 * 2 + k, oh), max(4 * 2 + k, ow), 2))
    for i in range(k):
        for j in range(k):
            full[:, i : i + 7 : 2, j : j + 9 : 2] += x @ w[:, i, j].T
    top, left = (3 * 2 + k - oh) // 2, (4 * 2 + k - ow) // 2
    ref = full[:, max(top, 0) : max(top, 0) + oh, max(left, 0) : max(left, 0) + ow] + b
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-5)
    if Interpreter is not None and k >= 2:  # LiteRT refuses kernels smaller than the stride
        np.testing.assert_allclose(y, run_litert(data, x)[0], atol=1e-5)


def _binary_model(code: int, options: str, const: np.ndarray, act: int) -> bytes:
    tensors = [T("x", [1, 4, 4, 3]), T("c", list(const.shape), data=const), T("y", [1, 4, 4, 3])]
    ops = [Op(code, [0, 1], [2], options, {"FusedActivationFunction": act})]
    return build_tflite(tensors, ops, [0], [2])


@pytest.mark.parametrize(
    ("code", "options", "fn"),
    [
        (OP.ADD, "AddOptions", np.add),
        (OP.MUL, "MulOptions", np.multiply),
        (OP.SUB, "SubOptions", np.subtract),
    ],
)
@pytest.mark.parametrize("const_shape", [(3,), (1, 1, 1, 3), (4, 1, 1)])
def test_binary_broadcasts_like_tflite(
    tmp_path: Path, code: int, options: str, fn: Callable[..., Any], const_shape: tuple[int, ...]
) -> None:
    x, c = rand(1, 4, 4, 3), rand(*const_shape, seed=11)
    data = _binary_model(code, options, c, ACT.RELU)
    (y,) = run_onnx(convert_bytes(tmp_path, data), x)
    np.testing.assert_allclose(y, np.maximum(fn(x, c), 0), atol=1e-6)


def _chain_model() -> tuple[bytes, dict[str, np.ndarray]]:
    """conv -> HARD_SWISH -> global AVERAGE_POOL -> LOGISTIC -> MUL (squeeze-excite) -> RELU."""
    w, b = rand(4, 3, 3, 2, seed=12), rand(4, seed=13)
    tensors = [
        T("x", [1, 6, 6, 2]),
        T("w", [4, 3, 3, 2], data=w),
        T("b", [4], data=b),
        T("conv", [1, 6, 6, 4]),
        T("hs", [1, 6, 6, 4]),
        T("pool", [1, 1, 1, 4]),
        T("gate", [1, 1, 1, 4]),
        T("se", [1, 6, 6, 4]),
        T("out", [1, 6, 6, 4]),
    ]
    conv = {"Padding": SAME, "StrideW": 1, "StrideH": 1, "DilationWFactor": 1, "DilationHFactor": 1}
    pool = {"Padding": VALID, "StrideW": 1, "StrideH": 1, "FilterWidth": 6, "FilterHeight": 6}
    ops = [
        Op(OP.CONV_2D, [0, 1, 2], [3], "Conv2DOptions", conv),
        Op(OP.HARD_SWISH, [3], [4]),
        Op(OP.AVERAGE_POOL_2D, [4], [5], "Pool2DOptions", pool),
        Op(OP.LOGISTIC, [5], [6]),
        Op(OP.MUL, [4, 6], [7], "MulOptions", {}),
        Op(OP.RELU, [7], [8]),
    ]
    return build_tflite(tensors, ops, [0], [8]), {"w": w, "b": b}


def test_squeeze_excite_chain_uses_global_pool_and_no_extra_transposes(tmp_path: Path) -> None:
    data, p = _chain_model()
    model = convert_bytes(tmp_path, data)
    types = op_types(model)
    assert "GlobalAveragePool" in types and "HardSwish" in types
    assert types.count("Transpose") == 2  # one at the input, one at the output, none inside
    x = rand(1, 6, 6, 2, seed=14)
    (y,) = run_onnx(model, x)
    conv = np_conv(x, p["w"], p["b"], (1, 1), (1, 1, 1, 1))
    hs = conv * np.clip(conv + 3, 0, 6) / 6
    gate = 1 / (1 + np.exp(-hs.mean(axis=(1, 2), keepdims=True)))
    np.testing.assert_allclose(y, np.maximum(hs * gate, 0), atol=1e-5)
    assert {v.name for v in model.graph.value_info} >= {"conv", "hs", "pool", "gate", "se"}


def test_average_pool_same_excludes_padding(tmp_path: Path) -> None:
    tensors = [T("x", [1, 5, 5, 2]), T("y", [1, 3, 3, 2])]
    pool = {"Padding": SAME, "StrideW": 2, "StrideH": 2, "FilterWidth": 3, "FilterHeight": 3}
    data = build_tflite(
        tensors, [Op(OP.AVERAGE_POOL_2D, [0], [1], "Pool2DOptions", pool)], [0], [1]
    )
    x = rand(1, 5, 5, 2, seed=15)
    (y,) = run_onnx(convert_bytes(tmp_path, data), x)
    ref = np.zeros((1, 3, 3, 2))
    for i in range(3):
        for j in range(3):
            ref[:, i, j] = x[:, max(2 * i - 1, 0) : 2 * i + 2, max(2 * j - 1, 0) : 2 * j + 2].mean(
                axis=(1, 2)
            )
    np.testing.assert_allclose(y, ref, atol=1e-6)


@pytest.mark.parametrize("keep", [True, False])
def test_mean_over_height_and_width(tmp_path: Path, keep: bool) -> None:
    out = [1, 1, 1, 3] if keep else [1, 3]
    tensors = [
        T("x", [1, 4, 6, 3]),
        T("axes", [2], tflite.TensorType.INT32, np.array([1, 2], np.int32)),
        T("y", out),
    ]
    data = build_tflite(
        tensors, [Op(OP.MEAN, [0, 1], [2], "ReducerOptions", {"KeepDims": keep})], [0], [2]
    )
    model = convert_bytes(tmp_path, data)
    x = rand(1, 4, 6, 3, seed=16)
    (y,) = run_onnx(model, x)
    np.testing.assert_allclose(y, x.mean(axis=(1, 2), keepdims=keep), atol=1e-6)
    assert ("GlobalAveragePool" in op_types(model)) == keep


@pytest.mark.parametrize(("align", "half"), [(False, True), (True, False), (False, False)])
def test_resize_bilinear_coordinate_modes(tmp_path: Path, align: bool, half: bool) -> None:
    size = np.array([7, 10], np.int32)
    tensors = [
        T("x", [1, 3, 4, 2]),
        T("size", [2], tflite.TensorType.INT32, size),
        T("y", [1, 7, 10, 2]),
    ]
    fields = {"AlignCorners": align, "HalfPixelCenters": half}
    op = Op(OP.RESIZE_BILINEAR, [0, 1], [2], "ResizeBilinearOptions", fields)
    data = build_tflite(tensors, [op], [0], [2])
    model = convert_bytes(tmp_path, data)
    resize = next(n for n in model.graph.node if n.op_type == "Resize")
    mode = {a.name: onnx.helper.get_attribute_value(a) for a in resize.attribute}[
        "coordinate_transformation_mode"
    ]
    assert mode == (b"align_corners" if align else b"half_pixel" if half else b"asymmetric")
    x = rand(1, 3, 4, 2, seed=17)
    (y,) = run_onnx(model, x)
    np.testing.assert_allclose(y, np_resize(x, 7, 10, align, half), atol=1e-5)
    if Interpreter is not None:
        np.testing.assert_allclose(y, run_litert(data, x)[0], atol=1e-5)


def test_reshape_softmax_concat_pad(tmp_path: Path) -> None:
    pads = np.array([[0, 0], [1, 0], [0, 2], [0, 0]], np.int32)
    tensors = [
        T("x", [1, 2, 3, 4]),
        T("relu", [1, 2, 3, 4]),
        T("cat", [1, 2, 3, 8]),
        T("padded", [1, 3, 5, 8]),
        T("flat", [1, 120]),
        T("probs", [1, 120]),
        T("pads", [4, 2], tflite.TensorType.INT32, pads),
    ]
    ops = [
        Op(OP.RELU, [0], [1]),
        Op(OP.CONCATENATION, [0, 1], [2], "ConcatenationOptions", {"Axis": 3}),
        Op(OP.PAD, [2, 6], [3]),
        Op(OP.RESHAPE, [3], [4]),
        Op(OP.SOFTMAX, [4], [5], "SoftmaxOptions", {"Beta": 0.5}),
    ]
    x = rand(1, 2, 3, 4, seed=18)
    data = build_tflite(tensors, ops, [0], [5, 2])
    model = convert_bytes(tmp_path, data)
    assert [o.name for o in model.graph.output] == ["probs", "cat"]
    probs, cat = run_onnx(model, x)
    ref_cat = np.concatenate([x, np.maximum(x, 0)], axis=3)
    logits = np.pad(ref_cat, pads).reshape(1, 120) * 0.5
    ref = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(cat, ref_cat, atol=1e-6)
    np.testing.assert_allclose(probs, ref, atol=1e-6)


def test_layout_agnostic_ops_add_no_transposes(tmp_path: Path) -> None:
    tensors = [T("x", [1, 2, 2, 3]), T("r", [1, 2, 2, 3]), T("y", [1, 2, 2, 3])]
    ops = [Op(OP.RELU6, [0], [1]), Op(OP.LOGISTIC, [1], [2])]
    model = convert_bytes(tmp_path, build_tflite(tensors, ops, [0], [2]))
    assert op_types(model) == ["Clip", "Sigmoid"]
    x = rand(1, 2, 2, 3, seed=19) * 5
    np.testing.assert_allclose(
        run_onnx(model, x)[0], 1 / (1 + np.exp(-np.clip(x, 0, 6))), atol=1e-6
    )


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "name"), [(OP.CUMSUM, "CUMSUM"), ("MyFancyOp", "CUSTOM:MyFancyOp")]
)
def test_unknown_op_names_the_op_index_and_model(
    tmp_path: Path, code: int | str, name: str
) -> None:
    tensors = [T("x", [1, 4]), T("r", [1, 4]), T("y", [1, 4])]
    data = build_tflite(tensors, [Op(OP.RELU, [0], [1]), Op(code, [1], [2])], [0], [2])
    with pytest.raises(UnsupportedOpError) as info:
        convert_bytes(tmp_path, data)
    assert info.value.op == name
    assert info.value.node == 1
    assert info.value.model == str(tmp_path / "model.tflite")
    assert name in str(info.value) and "model.tflite" in str(info.value)


@pytest.mark.parametrize(("x_type", "node"), [(tflite.TensorType.INT8, "x"), (F32, 0)])
def test_quantized_tensors_are_unsupported_not_wrong(
    tmp_path: Path, x_type: int, node: str | int
) -> None:
    tensors = [T("x", [1, 4], x_type), T("y", [1, 4], tflite.TensorType.INT8)]
    data = build_tflite(tensors, [Op(OP.RELU, [0], [1])], [0], [1])
    with pytest.raises(UnsupportedOpError, match="INT8") as info:
        convert_bytes(tmp_path, data)
    assert info.value.node == node


def test_bad_layout_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        convert_tflite(tmp_path / "x.tflite", layout="nwhc")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "content",
    [
        None,
        b"",
        b"TFL3",
        b"\x00" * 64,
        b"not a model at all, just some text" * 10,
        b"\x10\x00\x00\x00TFL3" + b"\xff" * 40,
    ],
)
def test_non_models_raise_model_load_error(tmp_path: Path, content: bytes | None) -> None:
    path = tmp_path / "bad.tflite"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelLoadError, match=r"bad\.tflite"):
        convert_tflite(path)


def test_directory_is_a_model_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError):
        convert_tflite(tmp_path)


def test_inconsistent_declared_shape_is_caught(tmp_path: Path) -> None:
    x, w, b = rand(1, 7, 9, 3), rand(4, 3, 3, 3, seed=1), rand(4, seed=2)
    good = conv_model(x.shape, w, b, SAME, 2, ACT.NONE)
    # Claim a VALID-sized output while the op says SAME: a silent wrong model otherwise.
    tensors = [
        T("x", [1, 7, 9, 3]),
        T("w", [4, 3, 3, 3], data=w),
        T("b", [4], data=b),
        T("y", [1, 3, 4, 4]),
    ]
    fields = {
        "Padding": SAME,
        "StrideW": 2,
        "StrideH": 2,
        "DilationWFactor": 1,
        "DilationHFactor": 1,
    }
    bad = build_tflite(tensors, [Op(OP.CONV_2D, [0, 1, 2], [3], "Conv2DOptions", fields)], [0], [3])
    convert_bytes(tmp_path, good)
    with pytest.raises(ModelLoadError):
        convert_bytes(tmp_path, bad)


# -- the real MediaPipe models ------------------------------------------------------------


def _photo(name: str) -> np.ndarray:
    if name == "astronaut":
        from skimage import data

        return np.asarray(data.astronaut())
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def preprocess(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """RGB photo -> [1, H, W, 3] float32 in [0, 1], as MediaPipe feeds the model."""
    resized = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    return (resized.astype(np.float32) / 255.0)[None]


def overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Tint the person green, for a person to look at."""
    alpha = 0.5 * mask[..., None]
    out = rgb.astype(np.float32) * (1 - alpha) + np.array([0, 255, 0], np.float32) * alpha
    return out.clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def general_model(selfie_general: Path) -> onnx.ModelProto:
    return convert_tflite(selfie_general)


@needs_litert
@pytest.mark.parametrize("which", ["general", "landscape"])
def test_mediapipe_models_match_litert(request: pytest.FixtureRequest, which: str) -> None:
    path: Path = request.getfixturevalue(f"selfie_{which}")
    model = convert_tflite(path)
    interface = {
        "general": ([1, 256, 256, 3], "activation_10", [1, 256, 256, 1]),
        "landscape": ([1, 144, 256, 3], "segment_back", [1, 144, 256, 1]),
    }[which]

    def dims(vi: onnx.ValueInfoProto) -> list[int]:
        return [d.dim_value for d in vi.type.tensor_type.shape.dim]

    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, dims(inp), inp.type.tensor_type.elem_type) == ("input_1", interface[0], 1)
    assert (out.name, dims(out), out.type.tensor_type.elem_type) == (interface[1], interface[2], 1)
    assert op_types(model).count("Transpose") == 2
    assert op_types(model).count("ConvTranspose") == 1
    assert op_types(model).count("GlobalAveragePool") == 10  # AVERAGE_POOL_2D or MEAN
    assert {i.data_type for i in model.graph.initializer} <= {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.INT64,
    }
    height, width = interface[0][1:3]
    feeds = [preprocess(_photo(p), height, width) for p in ("astronaut", "grace_hopper")]
    feeds.append(np.random.default_rng(0).random((1, height, width, 3), dtype=np.float32))
    data = path.read_bytes()
    for x in feeds:
        (y,) = run_onnx(model, x)
        (ref,) = run_litert(data, x)
        assert np.abs(y - ref).max() < 1e-4


def test_mediapipe_nchw_interface(selfie_landscape: Path) -> None:
    model = convert_tflite(selfie_landscape, layout="nchw")
    assert "Transpose" not in op_types(model)
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [
        1,
        3,
        144,
        256,
    ]
    x = preprocess(_photo("grace_hopper"), 144, 256)
    (y_nchw,) = run_onnx(model, x.transpose(0, 3, 1, 2).copy())
    (y_nhwc,) = run_onnx(convert_tflite(selfie_landscape), x)
    np.testing.assert_allclose(y_nchw.transpose(0, 2, 3, 1), y_nhwc, atol=1e-6)


# Boxes (rows, cols) in the 256x256 model input, found by looking at the overlays.
_BOXES = {
    "astronaut": {
        "face": (slice(52, 78), slice(98, 124)),
        "background": (slice(0, 32), slice(0, 32)),
    },
    "grace_hopper": {
        "face": (slice(72, 112), slice(96, 160)),
        "background": (slice(0, 40), slice(216, 256)),
    },
}


@pytest.mark.parametrize("photo", ["astronaut", "grace_hopper"])
def test_person_mask_on_photos(general_model: onnx.ModelProto, photo: str, tmp_path: Path) -> None:
    x = preprocess(_photo(photo), 256, 256)
    (y,) = run_onnx(general_model, x)
    mask = y[0, :, :, 0]
    face, background = _BOXES[photo]["face"], _BOXES[photo]["background"]
    assert mask[face].mean() > 0.9
    assert mask[background].mean() < 0.1
    picture = overlay((x[0] * 255).astype(np.uint8), mask)
    out = tmp_path / f"overlay_{photo}.png"
    assert cv2.imwrite(str(out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    assert out.stat().st_size > 1000


# -- fuzzing ------------------------------------------------------------------------------

_FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the fuzzed files; one file is rewritten per example."""
    return tmp_path_factory.mktemp("fuzz")


@pytest.fixture(scope="module")
def fuzz_seed(selfie_general: Path, scratch: Path) -> tuple[bytes, int, Path]:
    """The real model's bytes, where its structure (not weight data) starts, a scratch file."""
    data = selfie_general.read_bytes()
    model = tflite.Model.GetRootAs(data, 0)
    ends = [
        model.Buffers(i)._tab.Vector(4) + model.Buffers(i).DataLength()
        for i in range(model.BuffersLength())
        if model.Buffers(i).DataLength()
    ]
    return data, max(ends), scratch / "fuzzed.tflite"


def _convert_mutant(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    start = time.perf_counter()
    try:
        result = convert_tflite(path)
    except EdgeoptError:
        pass
    else:
        assert isinstance(result, onnx.ModelProto)
    assert time.perf_counter() - start < 5.0


def _positions(size: int, structure: int) -> st.SearchStrategy[int]:
    # Most weight bytes only change numbers; the tables, vectors and header are what break readers.
    return st.one_of(
        st.integers(structure, size - 1), st.integers(0, 127), st.integers(0, size - 1)
    )


@settings(_FUZZ, max_examples=400)
@given(cut=st.data())
def test_fuzz_truncated(fuzz_seed: tuple[bytes, int, Path], cut: st.DataObject) -> None:
    data, structure, path = fuzz_seed
    n = cut.draw(st.one_of(_positions(len(data), structure), st.integers(0, 64)))
    _convert_mutant(path, data[:n])


@settings(_FUZZ, max_examples=1200)
@given(flips=st.data())
def test_fuzz_bit_flips(fuzz_seed: tuple[bytes, int, Path], flips: st.DataObject) -> None:
    data, structure, path = fuzz_seed
    mutant = bytearray(data)
    for pos in flips.draw(st.lists(_positions(len(data), structure), min_size=1, max_size=8)):
        mutant[pos] ^= 1 << flips.draw(st.integers(0, 7))
    _convert_mutant(path, bytes(mutant))


@settings(_FUZZ, max_examples=900)
@given(edit=st.data())
def test_fuzz_byte_overwrites(fuzz_seed: tuple[bytes, int, Path], edit: st.DataObject) -> None:
    data, structure, path = fuzz_seed
    mutant = bytearray(data)
    for _ in range(edit.draw(st.integers(1, 4))):
        pos = edit.draw(_positions(len(data), structure))
        chunk = edit.draw(
            st.one_of(
                st.binary(min_size=1, max_size=16),
                st.sampled_from(
                    [b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\xff\xff\xff\xff", b"\x00" * 4]
                ),
            )
        )
        mutant[pos : pos + len(chunk)] = chunk
    _convert_mutant(path, bytes(mutant[: len(data)]))


@settings(_FUZZ, max_examples=500)
@given(garbage=st.binary(max_size=4096), tagged=st.booleans())
def test_fuzz_garbage(scratch: Path, garbage: bytes, tagged: bool) -> None:
    path = scratch / "garbage.tflite"
    if tagged:  # get past the identifier check, into the flatbuffer reader
        garbage = garbage[:4].ljust(4, b"\x00") + b"TFL3" + garbage[8:]
    _convert_mutant(path, garbage)


# -- operators of the other MediaPipe models ----------------------------------------------


@pytest.mark.parametrize("alpha_shape", [(3,), (1, 1, 3), (4, 4, 3)])
def test_prelu_matches_numpy_and_litert(tmp_path: Path, alpha_shape: tuple[int, ...]) -> None:
    """PRELU after a conv (channels-first inside) and on its own, alpha broadcast the TFLite way."""
    x = rand(1, 4, 4, 3) - 0.5
    alpha = rand(*alpha_shape, seed=5)
    tensors = [T("x", [1, 4, 4, 3]), T("a", list(alpha_shape), data=alpha), T("y", [1, 4, 4, 3])]
    data = build_tflite(tensors, [Op(OP.PRELU, [0, 1], [2])], [0], [2])
    (y,) = run_onnx(convert_bytes(tmp_path, data), x)
    np.testing.assert_allclose(y, np.where(x >= 0, x, alpha * x), atol=1e-6)
    if Interpreter is not None:
        np.testing.assert_allclose(y, run_litert(data, x)[0], atol=1e-6)


@pytest.mark.parametrize("act", [ACT.NONE, ACT.RELU])
def test_fully_connected_flattens_nhwc_and_matches_litert(tmp_path: Path, act: int) -> None:
    x = rand(1, 2, 2, 3) - 0.5
    w = rand(5, 12, seed=3) - 0.5
    b = rand(5, seed=4)
    tensors = [
        T("x", [1, 2, 2, 3]),
        T("w", [5, 12], data=w),
        T("b", [5], data=b),
        T("y", [1, 5]),
    ]
    ops = [
        Op(
            OP.FULLY_CONNECTED,
            [0, 1, 2],
            [3],
            "FullyConnectedOptions",
            {"FusedActivationFunction": act},
        )
    ]
    data = build_tflite(tensors, ops, [0], [3])
    (y,) = run_onnx(convert_bytes(tmp_path, data), x)
    want = x.reshape(1, 12) @ w.T + b
    np.testing.assert_allclose(y, np.maximum(want, 0) if act == ACT.RELU else want, atol=1e-5)
    if Interpreter is not None:
        np.testing.assert_allclose(y, run_litert(data, x)[0], atol=1e-5)


def test_every_unsupported_op_is_listed_at_once(tmp_path: Path) -> None:
    tensors = [T("x", [1, 4]), T("r", [1, 4]), T("s", [1, 4]), T("y", [1, 4])]
    ops = [Op(OP.RELU, [0], [1]), Op(OP.FLOOR, [1], [2]), Op(OP.CEIL, [2], [3])]
    data = build_tflite(tensors, ops, [0], [3])
    with pytest.raises(UnsupportedOpError, match=r"'CEIL, FLOOR' at node 1.*CEIL x1, FLOOR x1"):
        convert_bytes(tmp_path, data)


# -- MediaPipe's landmark custom operators (face_landmark_with_attention) -------------------
# LiteRT's Python interpreter does not have them: the reference is a float64 transcription of
# MediaPipe's kernels (loops, as the C++ does it), independent of the ONNX decomposition.


def mp_matrix(lm: np.ndarray, opts: dict[str, Any]) -> np.ndarray:
    """Landmarks2TransformMatrix (version 2)."""
    p = lm.reshape(-1, 3).astype(np.float64)
    left, right = opts["left_rotation_idx"], opts["right_rotation_idx"]
    phi = np.arctan2(p[right, 1] - p[left, 1], p[right, 0] - p[left, 0])
    r = opts["target_rotation_radians"] - phi
    rot = np.array([[np.cos(r), -np.sin(r)], [np.sin(r), np.cos(r)]])
    pts = p[opts["subset_idxs"], :2] @ rot.T
    hi, lo = pts.max(0), pts.min(0)
    centre = rot.T @ ((hi + lo) / 2)

    def shift(x: float, y: float) -> np.ndarray:
        return np.array([[1, 0, 0, x], [0, 1, 0, y], [0, 0, 1, 0], [0, 0, 0, 1.0]])

    back = np.eye(4)
    back[:2, :2] = rot.T
    w, h = opts["output_width"], opts["output_height"]
    scale = np.diag([opts["scale_x"] * (hi - lo)[0] / w, opts["scale_y"] * (hi - lo)[1] / h, 1, 1])
    return (shift(*centre) @ back @ scale @ shift(-w / 2, -h / 2))[None]


def mp_transform_landmarks(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """TransformLandmarks (version 2): x and y through the matrix, z kept."""
    m, out = m.reshape(4, 4), pts.astype(np.float64)
    for k in range(pts.shape[1]):
        x, y = pts[0, k, 0], pts[0, k, 1]
        out[0, k, :2] = m[0, 0] * x + m[0, 1] * y + m[0, 3], m[1, 0] * x + m[1, 1] * y + m[1, 3]
    return out


def mp_transform_tensor(x: np.ndarray, m: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TransformTensorBilinear (version 2): 0 outside the input, bilinear inside."""
    rows = m.reshape(4, 4)[:2].astype(np.float64)
    rows[:, 3] += rows[:, 0] * 0.5 + rows[:, 1] * 0.5 - 0.5  # MediaPipe's corner correction
    _, h, w, c = x.shape
    out = np.zeros((1, out_h, out_w, c))

    def read(i: int, j: int) -> np.ndarray:
        return x[0, i, j] if 0 <= i < h and 0 <= j < w else np.zeros(c)

    for oy in range(out_h):
        for ox in range(out_w):
            tx, ty = rows @ np.array([ox, oy, 0.0, 1.0])
            if tx < 0 or tx > w - 1 or ty < 0 or ty > h - 1:
                continue
            fx, fy = int(np.floor(tx)), int(np.floor(ty))
            rx, ry = tx - fx, ty - fy
            upper = (1 - rx) * read(fy, fx) + rx * read(fy, fx + 1)
            lower = (1 - rx) * read(fy + 1, fx) + rx * read(fy + 1, fx + 1)
            out[0, oy, ox] = ry * lower + (1 - ry) * upper
    return out


@pytest.mark.parametrize(("left", "right", "target"), [(0, 5, 0.0), (2, 7, 0.4), (3, 3, 0.0)])
def test_mediapipe_landmark_ops_match_their_kernels(
    tmp_path: Path, left: int, right: int, target: float
) -> None:
    opts = {
        "left_rotation_idx": left,
        "right_rotation_idx": right,
        "subset_idxs": [1, 4, 6, 8, 9, 11, 2],  # odd: MediaPipe pairs the last with itself
        "target_rotation_radians": target,
        "output_height": 4,
        "output_width": 5,
        "scale_x": 1.5,
        "scale_y": 1.25,
    }
    tensors = [
        T("landmarks", [1, 12, 3]),
        T("features", [1, 6, 7, 3]),
        T("points2", [1, 5, 2]),
        T("points3", [1, 5, 3]),
        T("matrix", [1, 4, 4]),
        T("crop", [1, 4, 5, 3]),
        T("moved2", [1, 5, 2]),
        T("moved3", [1, 5, 3]),
    ]
    crop = {"output_height": 4, "output_width": 5}
    ops = [
        Op("Landmarks2TransformMatrix", [0], [4], custom=flexbuffers.Dumps(opts)),
        Op("TransformTensorBilinear", [1, 4], [5], custom=flexbuffers.Dumps(crop)),
        Op("TransformLandmarks", [2, 4], [6]),
        Op("TransformLandmarks", [3, 4], [7]),
    ]
    data = build_tflite(tensors, ops, [0, 1, 2, 3], [4, 5, 6, 7])
    rng = np.random.default_rng(left)
    landmarks = (rng.random((1, 12, 3)) * [8, 7, 1]).astype(np.float32)
    features, p2, p3 = rand(1, 6, 7, 3), rand(1, 5, 2, seed=1), rand(1, 5, 3, seed=2)
    model = convert_bytes(tmp_path, data)
    assert "GridSample" in op_types(model)
    matrix, warped, moved2, moved3 = run_onnx(model, landmarks, features, p2, p3)
    want = mp_matrix(landmarks, opts)
    np.testing.assert_allclose(matrix, want, atol=1e-5)
    # The reference warps with the converted matrix, so each operator is checked on its own.
    want_crop = mp_transform_tensor(features, matrix, 4, 5)
    assert (want_crop == 0).all(axis=-1).any() and (want_crop != 0).any()  # crosses the edge
    np.testing.assert_allclose(warped, want_crop, atol=1e-5)
    np.testing.assert_allclose(moved2, mp_transform_landmarks(p2, matrix), atol=1e-5)
    np.testing.assert_allclose(moved3, mp_transform_landmarks(p3, matrix), atol=1e-5)
