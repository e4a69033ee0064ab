"""The TFLite operator converters, and the graph-building context they share.

Each converter turns one TFLite operator into ONNX nodes and is registered under the
operator's name with :func:`converter`; adding an operator means adding one function here.
Custom operators are registered as ``"CUSTOM:<custom_code>"``.

Layouts: a rank-4 TFLite activation is NHWC. ONNX's Conv, pooling and Resize want NCHW, so
every rank-4 value may exist in two layouts, ``NATURAL`` (TFLite's axis order) and ``CF``
(channels first). A converter asks for the layout it needs with :meth:`Context.get`, and a
Transpose is made only when that layout does not exist yet (then cached), so layout-agnostic
operators (activations, element-wise arithmetic) never add a transpose pair.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import onnx
import tflite
from onnx import helper, numpy_helper

from edgeopt.errors import ModelLoadError, UnsupportedOpError

__all__ = [
    "ARITY",
    "CF",
    "CONVERTERS",
    "NATURAL",
    "Context",
    "Operator",
    "Quantization",
    "Tensor",
    "converter",
]

Layout = Literal["natural", "cf"]
NATURAL: Final = "natural"
CF: Final = "cf"
TO_CF: Final = (0, 3, 1, 2)
TO_NATURAL: Final = (0, 2, 3, 1)

# Bounds on attribute values taken from the file: anything larger is corruption, and
# passing it on could make ONNX shape inference overflow.
_MAX_ATTR = 1 << 20

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of a constant: ``real = (q - zero_point) * scale``.

    Attributes:
        scale: One scale per tensor, or one per slice along ``axis``.
        zero_point: Zero points, shaped like ``scale``.
        axis: The quantized dimension for per-channel quantization.
    """

    scale: npt.NDArray[np.float32]
    zero_point: npt.NDArray[np.int64]
    axis: int


@dataclass(frozen=True)
class Tensor:
    """One TFLite tensor, read and checked.

    Attributes:
        index: Its index in the subgraph.
        name: Its name, made unique within the model.
        dtype: Its TFLite ``TensorType`` code.
        shape: Its static shape, in TFLite's (NHWC) axis order.
        data: Its constant value, or None for an activation.
        quant: Its quantization parameters, when it has any.
    """

    index: int
    name: str
    dtype: int
    shape: tuple[int, ...]
    data: Array | None
    quant: Quantization | None


@dataclass(frozen=True)
class Operator:
    """One TFLite operator, read and checked.

    Attributes:
        index: Its index in the subgraph's operator list.
        kind: The builtin name (``"CONV_2D"``) or ``"CUSTOM:<custom_code>"``.
        inputs: Tensor indices; -1 marks an omitted optional input.
        outputs: Tensor indices.
        options_type: The ``BuiltinOptions`` union tag.
        options: The options table (a flatbuffers ``Table``), or None.
        custom_options: The raw custom options of a custom operator.
    """

    index: int
    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options_type: int
    options: Any
    custom_options: bytes


class Context:
    """The ONNX graph under construction and the TFLite tensors it is built from.

    Args:
        path: The model file, for error messages.
        tensors: The tensors that operators or the graph's inputs and outputs refer to.
    """

    def __init__(self, path: str, tensors: dict[int, Tensor]) -> None:
        self.path = path
        self.tensors = tensors
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.consts: dict[int, Array] = {
            i: t.data for i, t in tensors.items() if t.data is not None
        }
        # For each produced tensor, its ONNX value per layout; the first entry is where it was made.
        self.values: dict[int, dict[str, str]] = {}
        self.node_outputs: set[str] = set()
        self.op: Operator | None = None
        self.claimed: set[str] = set()
        self._used: set[str] = {t.name for t in tensors.values()}
        self._const_cache: dict[tuple[int, str], str] = {}
        self._scalar_cache: dict[float, str] = {}
        self._node_names: set[str] = set()
        self._counter = 0

    # -- errors ---------------------------------------------------------------------------

    def fail(self, problem: str) -> ModelLoadError:
        """Build the error for a model that is inconsistent at the current operator."""
        where = f"operator {self.op.index} ({self.op.kind}): " if self.op else ""
        return ModelLoadError(f"{self.path}: not a valid TFLite model ({where}{problem})")

    def unsupported(self, what: str, hint: str = "") -> UnsupportedOpError:
        """Build the error for a valid operator that this importer cannot convert."""
        op = self.op
        return UnsupportedOpError(what, op.index if op else "graph", self.path, hint)

    # -- names, nodes and constants -------------------------------------------------------

    def fresh(self, hint: str) -> str:
        """Return a new value name that no TFLite tensor and no earlier value uses."""
        name = hint
        while name in self._used:
            self._counter += 1
            name = f"{hint}_{self._counter}"
        self._used.add(name)
        return name

    def node(self, op_type: str, inputs: Sequence[str], hint: str = "", **attrs: Any) -> str:
        """Append one single-output ONNX node and return its output's name."""
        out = self.fresh(hint or f"_{op_type.lower()}")
        self.node_outputs.add(out)
        # Node names point back at the TFLite operator, for whoever debugs a converted graph.
        name = f"{self.op.kind}#{self.op.index}/{op_type}" if self.op else f"io/{op_type}"
        if name in self._node_names:
            name = f"{name}_{len(self._node_names)}"
        self._node_names.add(name)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=name, **attrs))
        return out

    def initializer(self, array: Array, hint: str) -> str:
        """Add a constant to the graph and return its name."""
        name = self.fresh(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def claim(self, index: int) -> str | None:
        """Give tensor ``index``'s own name to the caller, once; None if already given."""
        name = self.tensors[index].name
        if name in self.claimed:
            return None
        self.claimed.add(name)
        return name

    def const_input(self, index: int, array: Array) -> str:
        """Add a (possibly re-laid-out) constant operand, named after its tensor if still free."""
        name = self.claim(index)
        if name is None:
            return self.initializer(array, self.tensors[index].name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def scalar(self, value: float) -> str:
        """Return a float32 scalar constant, shared by every node that needs the same one."""
        if value not in self._scalar_cache:
            self._scalar_cache[value] = self.initializer(np.array(value, np.float32), "_scalar")
        return self._scalar_cache[value]

    def int64s(self, values: Sequence[int], hint: str) -> str:
        """Add an int64 vector constant (shapes, pads, sizes) and return its name."""
        return self.initializer(np.array(list(values), np.int64), hint)

    # -- tensors --------------------------------------------------------------------------

    def tensor(self, index: int) -> Tensor:
        """Return operand ``index``'s tensor; a -1 (omitted) operand is an error here."""
        if index not in self.tensors:
            raise self.fail("a required operand is missing")
        return self.tensors[index]

    def const(self, index: int) -> Array | None:
        """Return the constant value of a tensor (folded DEQUANTIZE included), or None."""
        return self.consts.get(index)

    def weights(self, index: int, rank: int) -> Array:
        """Return a float32 constant operand of the given rank, or raise."""
        arr = self.const(index)
        if arr is None:
            raise self.unsupported(f"{self._kind()} with non-constant weights")
        if arr.ndim != rank or arr.dtype != np.float32:
            raise self.fail(f"weights {self.tensor(index).name!r} are {arr.dtype}{list(arr.shape)}")
        return arr

    def int_const(self, index: int) -> list[int]:
        """Return an integer constant operand (axes, sizes, paddings) flattened to a list."""
        arr = self.const(index)
        if arr is None or arr.dtype.kind not in "iu":
            raise self.unsupported(f"{self._kind()} with a non-constant or non-integer operand")
        return [int(v) for v in arr.reshape(-1)]

    def layout_of(self, index: int) -> str:
        """The layout to work in for a tensor: channels-first if it exists in it already."""
        have = self.values.get(index, {})
        return CF if CF in have else NATURAL

    def get(self, index: int, layout: str = NATURAL) -> str:
        """Return the ONNX value of a tensor in the given layout, transposing once if needed."""
        tensor = self.tensor(index)
        if len(tensor.shape) != 4:
            layout = NATURAL
        arr = self.consts.get(index)
        if arr is not None:
            key = (index, layout)
            if key not in self._const_cache:
                data = arr.transpose(TO_CF) if layout == CF else arr
                self._const_cache[key] = self.const_input(index, data)
            return self._const_cache[key]
        have = self.values.get(index)
        if not have:
            raise self.fail(f"tensor {tensor.name!r} is used before any operator produces it")
        if layout not in have:
            src = next(iter(have.values()))
            perm = TO_CF if layout == CF else TO_NATURAL
            suffix = "_nchw" if layout == CF else "_nhwc"
            have[layout] = self.node("Transpose", [src], tensor.name + suffix, perm=list(perm))
        return have[layout]

    def bind(self, index: int, value: str, layout: str = NATURAL) -> None:
        """Record that the ONNX value ``value`` (in ``layout``) holds tensor ``index``."""
        tensor = self.tensor(index)
        if index in self.values or index in self.consts:
            raise self.fail(f"tensor {tensor.name!r} is written more than once")
        self.values[index] = {layout if len(tensor.shape) == 4 else NATURAL: value}

    def options(self, op: Operator, cls: Any) -> Any:
        """Return the operator's builtin options as ``cls``, or None when it has none."""
        if op.options is None:
            return None
        if op.options_type != getattr(tflite.BuiltinOptions, cls.__name__):
            raise self.fail(f"options of type {op.options_type}, expected {cls.__name__}")
        opts = cls()
        opts.Init(op.options.Bytes, op.options.Pos)
        return opts

    def activation(self, value: str, code: int) -> str:
        """Apply a TFLite fused activation to ``value``."""
        if code == tflite.ActivationFunctionType.NONE:
            return value
        if code == tflite.ActivationFunctionType.RELU:
            return self.node("Relu", [value])
        if code == tflite.ActivationFunctionType.RELU6:
            return self.node("Clip", [value, self.scalar(0.0), self.scalar(6.0)])
        if code == tflite.ActivationFunctionType.RELU_N1_TO_1:
            return self.node("Clip", [value, self.scalar(-1.0), self.scalar(1.0)])
        if code == tflite.ActivationFunctionType.TANH:
            return self.node("Tanh", [value])
        raise self.unsupported(f"{self._kind()} with fused activation {code}")

    def _kind(self) -> str:
        return self.op.kind if self.op else "graph"


Converter = Callable[[Context, Operator], None]
CONVERTERS: dict[str, Converter] = {}
# How many inputs each operator takes (fewest, most); checked before its converter runs,
# so a converter may index its operands freely. Every operator has exactly one output.
ARITY: dict[str, tuple[int, int]] = {}


def converter(*kinds: str, inputs: tuple[int, int] = (1, 1)) -> Callable[[Converter], Converter]:
    """Register a function as the converter of the named TFLite operators.

    Args:
        *kinds: Operator names, e.g. ``"CONV_2D"`` or ``"CUSTOM:Convolution2DTransposeBias"``.
        inputs: The fewest and the most inputs the operators take.
    """

    def register(fn: Converter) -> Converter:
        for kind in kinds:
            CONVERTERS[kind] = fn
            ARITY[kind] = inputs
        return fn

    return register


# -- helpers ------------------------------------------------------------------------------


def _cf_axis(axis: int) -> int:
    return TO_CF.index(axis)


def _fused(opts: Any) -> int:
    return int(opts.FusedActivationFunction()) if opts is not None else 0


def _check_int(ctx: Context, what: str, value: int, low: int = 1) -> int:
    if not low <= value <= _MAX_ATTR:
        raise ctx.fail(f"{what} {value} is out of range")
    return value


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """Return (before, after) padding for TensorFlow's SAME rule; the odd pixel goes after.

    Args:
        size: The input's spatial size along one axis.
        kernel: The filter size along that axis.
        stride: The stride along that axis.
        dilation: The dilation along that axis.

    Returns:
        The padding before and after, as explicit ONNX pads.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pads(
    ctx: Context, opts: Any, hw: tuple[int, int], kernel: tuple[int, int], dil: tuple[int, int]
) -> list[int]:
    padding = int(opts.Padding())
    if padding == tflite.Padding.VALID:
        return [0, 0, 0, 0]
    if padding != tflite.Padding.SAME:
        raise ctx.fail(f"unknown padding {padding}")
    strides = _strides(ctx, opts)
    top, bottom = same_padding(hw[0], kernel[0], strides[0], dil[0])
    left, right = same_padding(hw[1], kernel[1], strides[1], dil[1])
    return [top, left, bottom, right]


def _strides(ctx: Context, opts: Any) -> tuple[int, int]:
    return (
        _check_int(ctx, "stride", int(opts.StrideH())),
        _check_int(ctx, "stride", int(opts.StrideW())),
    )


def _kernel(ctx: Context, weights: Array) -> tuple[int, int]:
    return (
        _check_int(ctx, "kernel height", int(weights.shape[1])),
        _check_int(ctx, "kernel width", int(weights.shape[2])),
    )


def _nhwc(ctx: Context, index: int) -> tuple[int, int, int, int]:
    shape = ctx.tensor(index).shape
    if len(shape) != 4:
        raise ctx.fail(f"expected a rank-4 NHWC input, got shape {list(shape)}")
    return shape[0], shape[1], shape[2], shape[3]


def _bias(ctx: Context, op: Operator, cout: int) -> list[str]:
    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return []
    bias = ctx.weights(op.inputs[2], 1)
    if bias.shape[0] != cout:
        raise ctx.fail(f"bias has {bias.shape[0]} values for {cout} output channels")
    return [ctx.get(op.inputs[2])]


def _finish(ctx: Context, op: Operator, value: str, act: int, layout: str = CF) -> None:
    ctx.bind(op.outputs[0], ctx.activation(value, act), layout)


# -- converters ---------------------------------------------------------------------------


@converter("DEQUANTIZE")
def dequantize(ctx: Context, op: Operator) -> None:
    """Fold a DEQUANTIZE of a constant (fp16, or int8/uint8/int16 affine) into fp32."""
    src, out = op.inputs[0], op.outputs[0]
    arr = ctx.const(src)
    if arr is None:
        raise ctx.unsupported("DEQUANTIZE of a non-constant tensor")
    tensor = ctx.tensor(src)
    if arr.dtype.kind == "f":
        value = arr.astype(np.float32)
    elif tensor.quant is not None and arr.dtype.kind in "iu":
        q = tensor.quant
        shape = [1] * arr.ndim
        if q.scale.size > 1:
            if not 0 <= q.axis < arr.ndim or arr.shape[q.axis] != q.scale.size:
                raise ctx.fail("per-channel quantization does not match the tensor's shape")
            shape[q.axis] = q.scale.size
        zero = q.zero_point.reshape(shape) if q.zero_point.size == q.scale.size else 0
        value = ((arr.astype(np.int64) - zero) * q.scale.reshape(shape)).astype(np.float32)
    else:
        raise ctx.unsupported(f"DEQUANTIZE of a {arr.dtype} constant without quantization")
    if tuple(value.shape) != ctx.tensor(out).shape:
        raise ctx.fail(f"DEQUANTIZE changes shape {list(value.shape)}")
    if out in ctx.values or out in ctx.consts:
        raise ctx.fail(f"tensor {ctx.tensor(out).name!r} is written more than once")
    ctx.consts[out] = value


@converter("CONV_2D", inputs=(2, 3))
def conv_2d(ctx: Context, op: Operator) -> None:
    """CONV_2D: weights [Cout, kh, kw, Cin] become ONNX's [Cout, Cin, kh, kw]."""
    opts = ctx.options(op, tflite.Conv2DOptions)
    if opts is None:
        raise ctx.fail("CONV_2D without options")
    w = ctx.weights(op.inputs[1], 4)
    _, height, width, cin = _nhwc(ctx, op.inputs[0])
    if w.shape[3] == 0 or cin % w.shape[3]:
        raise ctx.fail(f"{cin} input channels do not fit weights {list(w.shape)}")
    dil = (
        _check_int(ctx, "dilation", int(opts.DilationHFactor())),
        _check_int(ctx, "dilation", int(opts.DilationWFactor())),
    )
    kernel = _kernel(ctx, w)
    pads = _pads(ctx, opts, (height, width), kernel, dil)
    inputs = [ctx.get(op.inputs[0], CF), ctx.const_input(op.inputs[1], w.transpose(TO_CF))]
    y = ctx.node(
        "Conv",
        inputs + _bias(ctx, op, int(w.shape[0])),
        kernel_shape=list(kernel),
        strides=list(_strides(ctx, opts)),
        dilations=list(dil),
        pads=pads,
        group=cin // int(w.shape[3]),
    )
    _finish(ctx, op, y, _fused(opts))


@converter("DEPTHWISE_CONV_2D", inputs=(2, 3))
def depthwise_conv_2d(ctx: Context, op: Operator) -> None:
    """DEPTHWISE_CONV_2D: a grouped Conv; weights [1, kh, kw, C*M] become [C*M, 1, kh, kw]."""
    opts = ctx.options(op, tflite.DepthwiseConv2DOptions)
    if opts is None:
        raise ctx.fail("DEPTHWISE_CONV_2D without options")
    w = ctx.weights(op.inputs[1], 4)
    _, height, width, cin = _nhwc(ctx, op.inputs[0])
    cout = int(w.shape[3])
    if w.shape[0] != 1 or cin == 0 or cout % cin:
        raise ctx.fail(f"{cin} input channels do not fit depthwise weights {list(w.shape)}")
    dil = (
        _check_int(ctx, "dilation", int(opts.DilationHFactor())),
        _check_int(ctx, "dilation", int(opts.DilationWFactor())),
    )
    kernel = _kernel(ctx, w)
    pads = _pads(ctx, opts, (height, width), kernel, dil)
    inputs = [ctx.get(op.inputs[0], CF), ctx.const_input(op.inputs[1], w.transpose(3, 0, 1, 2))]
    y = ctx.node(
        "Conv",
        inputs + _bias(ctx, op, cout),
        kernel_shape=list(kernel),
        strides=list(_strides(ctx, opts)),
        dilations=list(dil),
        pads=pads,
        group=cin,
    )
    _finish(ctx, op, y, _fused(opts))


@converter("CUSTOM:Convolution2DTransposeBias", inputs=(2, 3))
def conv_transpose_bias(ctx: Context, op: Operator) -> None:
    """MediaPipe's transposed convolution with bias.

    Its custom options are three little-endian int32: padding (1 = SAME, 2 = VALID),
    stride_w, stride_h. Weights are [Cout, kh, kw, Cin]; ONNX ConvTranspose wants
    [Cin, Cout, kh, kw]. SAME gives ``in * stride`` outputs, VALID ``(in - 1) * stride + k``;
    the crop follows TFLite's transpose-conv rule (the odd pixel comes off the bottom/right).
    """
    if len(op.custom_options) != 12:
        raise ctx.fail(f"custom options of {len(op.custom_options)} bytes, expected 12")
    padding, stride_w, stride_h = struct.unpack("<3i", op.custom_options)
    strides = (_check_int(ctx, "stride", stride_h), _check_int(ctx, "stride", stride_w))
    if padding not in (1, 2):
        raise ctx.fail(f"unknown padding {padding}")
    w = ctx.weights(op.inputs[1], 4)
    _, height, width, cin = _nhwc(ctx, op.inputs[0])
    if w.shape[3] != cin:
        raise ctx.fail(f"{cin} input channels do not fit weights {list(w.shape)}")
    hw = (height, width)
    kernel = _kernel(ctx, w)
    pads, extra = [0, 0, 0, 0], [0, 0]
    for axis in range(2):
        full = (hw[axis] - 1) * strides[axis] + kernel[axis]
        out = hw[axis] * strides[axis] if padding == 1 else full
        total = max(full - out, 0)
        pads[axis], pads[axis + 2] = total // 2, total - total // 2
        # When the kernel is smaller than the stride, SAME asks for rows no tap reaches.
        extra[axis] = out - (full - total)
    x, bias = ctx.get(op.inputs[0], CF), _bias(ctx, op, int(w.shape[0]))
    y = ctx.node(
        "ConvTranspose",
        [x, ctx.const_input(op.inputs[1], w.transpose(3, 0, 1, 2)), *bias],
        kernel_shape=list(kernel),
        strides=list(strides),
        pads=pads,
        output_padding=extra,
    )
    _finish(ctx, op, y, 0)


@converter("AVERAGE_POOL_2D", "MAX_POOL_2D")
def pool_2d(ctx: Context, op: Operator) -> None:
    """Pooling; an average over the whole feature map becomes GlobalAveragePool."""
    opts = ctx.options(op, tflite.Pool2DOptions)
    if opts is None:
        raise ctx.fail(f"{op.kind} without options")
    hw = _nhwc(ctx, op.inputs[0])[1:3]
    kernel = (
        _check_int(ctx, "filter height", int(opts.FilterHeight())),
        _check_int(ctx, "filter width", int(opts.FilterWidth())),
    )
    pads = _pads(ctx, opts, hw, kernel, (1, 1))
    x = ctx.get(op.inputs[0], CF)
    if op.kind == "AVERAGE_POOL_2D" and kernel == hw and not any(pads):
        y = ctx.node("GlobalAveragePool", [x])
    else:
        # TFLite's average excludes the padding, as count_include_pad=0 does.
        attrs: dict[str, Any] = {"kernel_shape": list(kernel), "pads": pads}
        attrs["strides"] = list(_strides(ctx, opts))
        if op.kind == "AVERAGE_POOL_2D":
            y = ctx.node("AveragePool", [x], count_include_pad=0, **attrs)
        else:
            y = ctx.node("MaxPool", [x], **attrs)
    _finish(ctx, op, y, _fused(opts))


_UNARY: Final = {
    "RELU": "Relu",
    "TANH": "Tanh",
    "LOGISTIC": "Sigmoid",
    "HARD_SWISH": "HardSwish",
}
_CLIPS: Final = {"RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0)}


@converter(*_UNARY, *_CLIPS)
def unary(ctx: Context, op: Operator) -> None:
    """Element-wise activations; they work in whichever layout their input already has."""
    layout = ctx.layout_of(op.inputs[0])
    x = ctx.get(op.inputs[0], layout)
    if op.kind in _CLIPS:
        low, high = _CLIPS[op.kind]
        y = ctx.node("Clip", [x, ctx.scalar(low), ctx.scalar(high)])
    else:
        y = ctx.node(_UNARY[op.kind], [x])
    ctx.bind(op.outputs[0], y, layout)


_BINARY: Final = {
    "ADD": ("Add", tflite.AddOptions),
    "SUB": ("Sub", tflite.SubOptions),
    "MUL": ("Mul", tflite.MulOptions),
    "DIV": ("Div", tflite.DivOptions),
}


@converter(*_BINARY, inputs=(2, 2))
def binary(ctx: Context, op: Operator) -> None:
    """Element-wise arithmetic with NumPy broadcasting and a fused activation.

    Works channels-first when a rank-4 operand already is; a lower-rank activation operand
    keeps the TFLite layout, where TFLite's right-aligned broadcasting holds as is.
    """
    op_type, opts_cls = _BINARY[op.kind]
    out_rank = len(ctx.tensor(op.outputs[0]).shape)
    runtime = [i for i in op.inputs if ctx.const(i) is None]
    layout = NATURAL
    if out_rank == 4 and all(len(ctx.tensor(i).shape) == 4 for i in runtime):
        layout = CF if any(ctx.layout_of(i) == CF for i in runtime) else NATURAL
    names = []
    for i in op.inputs:
        arr = ctx.const(i)
        if arr is not None and layout == CF and arr.ndim < 4:
            arr4 = arr.reshape((1,) * (4 - arr.ndim) + arr.shape).transpose(TO_CF)
            names.append(ctx.const_input(i, arr4))
        else:
            names.append(ctx.get(i, layout))
    y = ctx.node(op_type, names)
    _finish(ctx, op, y, _fused(ctx.options(op, opts_cls)), layout)


@converter("CONCATENATION", inputs=(1, 1 << 16))
def concatenation(ctx: Context, op: Operator) -> None:
    """CONCATENATION along one axis, remapped when working channels-first."""
    opts = ctx.options(op, tflite.ConcatenationOptions)
    rank = len(ctx.tensor(op.outputs[0]).shape)
    axis = int(opts.Axis()) if opts is not None else 0
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} out of range for rank {rank}")
    axis %= rank
    cf = rank == 4 and any(ctx.layout_of(i) == CF for i in op.inputs if ctx.const(i) is None)
    layout = CF if cf else NATURAL
    names = [ctx.get(i, layout) for i in op.inputs]
    y = ctx.node("Concat", names, axis=_cf_axis(axis) if cf else axis)
    _finish(ctx, op, y, _fused(opts), layout)


@converter("PAD", inputs=(2, 2))
@converter("PADV2", inputs=(2, 3))
def pad(ctx: Context, op: Operator) -> None:
    """PAD / PADV2 with constant paddings [rank, 2], reordered for channels-first."""
    rank = len(ctx.tensor(op.inputs[0]).shape)
    flat = ctx.int_const(op.inputs[1])
    if len(flat) != 2 * rank or any(not 0 <= p <= _MAX_ATTR for p in flat):
        raise ctx.fail(f"paddings {flat} do not fit rank {rank}")
    pairs = [(flat[2 * a], flat[2 * a + 1]) for a in range(rank)]
    layout = ctx.layout_of(op.inputs[0])
    if layout == CF:
        pairs = [pairs[a] for a in TO_CF]
    inputs = [
        ctx.get(op.inputs[0], layout),
        ctx.int64s([p[0] for p in pairs] + [p[1] for p in pairs], "_pads"),
    ]
    if op.kind == "PADV2" and len(op.inputs) > 2:
        value = ctx.const(op.inputs[2])
        if value is None or value.size != 1:
            raise ctx.unsupported("PADV2 with a non-constant pad value")
        inputs.append(ctx.scalar(float(value.reshape(-1)[0])))
    ctx.bind(op.outputs[0], ctx.node("Pad", inputs), layout)


@converter("RESHAPE", inputs=(1, 2))
def reshape(ctx: Context, op: Operator) -> None:
    """RESHAPE to the output tensor's static shape, in TFLite's axis order."""
    src, dst = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    if math.prod(src.shape) != math.prod(dst.shape):
        raise ctx.fail(f"cannot reshape {list(src.shape)} to {list(dst.shape)}")
    shape = ctx.int64s(dst.shape, "_shape")
    ctx.bind(op.outputs[0], ctx.node("Reshape", [ctx.get(op.inputs[0]), shape]))


@converter("SOFTMAX")
def softmax(ctx: Context, op: Operator) -> None:
    """SOFTMAX over the last TFLite axis, with its beta as a pre-scale."""
    opts = ctx.options(op, tflite.SoftmaxOptions)
    beta = float(opts.Beta()) if opts is not None else 1.0
    rank = len(ctx.tensor(op.inputs[0]).shape)
    if rank == 0:
        raise ctx.fail("SOFTMAX of a scalar")
    layout = ctx.layout_of(op.inputs[0])
    x = ctx.get(op.inputs[0], layout)
    if beta != 1.0:
        x = ctx.node("Mul", [x, ctx.scalar(beta)])
    axis = 1 if layout == CF else rank - 1
    ctx.bind(op.outputs[0], ctx.node("Softmax", [x], axis=axis), layout)


@converter("MEAN", inputs=(2, 2))
def mean(ctx: Context, op: Operator) -> None:
    """MEAN over constant axes; over H and W of a rank-4 tensor it is GlobalAveragePool."""
    rank, given = len(ctx.tensor(op.inputs[0]).shape), ctx.int_const(op.inputs[1])
    axes = sorted({a % rank for a in given if -rank <= a < rank})
    if not axes or len(axes) != len(set(given)):
        raise ctx.fail(f"axes {given} do not fit rank {rank}")
    opts = ctx.options(op, tflite.ReducerOptions)
    keep = bool(opts.KeepDims()) if opts is not None else False
    if rank == 4 and keep and axes == [1, 2]:
        y = ctx.node("GlobalAveragePool", [ctx.get(op.inputs[0], CF)])
        ctx.bind(op.outputs[0], y, CF)
        return
    # Without keep_dims the result's axis order would differ between layouts: go natural.
    layout = ctx.layout_of(op.inputs[0]) if keep else NATURAL
    mapped = sorted(_cf_axis(a) for a in axes) if layout == CF and rank == 4 else axes
    y = ctx.node("ReduceMean", [ctx.get(op.inputs[0], layout)], axes=mapped, keepdims=int(keep))
    ctx.bind(op.outputs[0], y, layout)


@converter("RESIZE_BILINEAR", inputs=(1, 2))
def resize_bilinear(ctx: Context, op: Operator) -> None:
    """RESIZE_BILINEAR; align_corners / half_pixel_centers pick the coordinate mapping."""
    opts = ctx.options(op, tflite.ResizeBilinearOptions)
    align = bool(opts.AlignCorners()) if opts is not None else False
    half = bool(opts.HalfPixelCenters()) if opts is not None else False
    if align and half:
        raise ctx.fail("align_corners and half_pixel_centers are both set")
    mode = "align_corners" if align else "half_pixel" if half else "asymmetric"
    src, out = _nhwc(ctx, op.inputs[0]), ctx.tensor(op.outputs[0]).shape
    if len(out) != 4 or (out[0], out[3]) != (src[0], src[3]):
        raise ctx.fail(f"cannot resize {list(src)} to {list(out)}")
    if len(op.inputs) > 1 and ctx.int_const(op.inputs[1]) != [out[1], out[2]]:
        raise ctx.fail(f"size {ctx.int_const(op.inputs[1])} differs from output {list(out)}")
    sizes = ctx.int64s([out[0], out[3], out[1], out[2]], "_sizes")
    y = ctx.node(
        "Resize",
        [ctx.get(op.inputs[0], CF), "", "", sizes],
        mode="linear",
        coordinate_transformation_mode=mode,
    )
    ctx.bind(op.outputs[0], y, CF)


@converter("PRELU", inputs=(2, 2))
def prelu(ctx: Context, op: Operator) -> None:
    """PRELU with a constant alpha, broadcast the TFLite way (right-aligned, NHWC)."""
    alpha = ctx.const(op.inputs[1])
    if alpha is None:
        raise ctx.unsupported("PRELU with a non-constant alpha")
    rank = len(ctx.tensor(op.inputs[0]).shape)
    if alpha.ndim > rank:
        raise ctx.fail(f"alpha {list(alpha.shape)} has a higher rank than the input ({rank})")
    layout = ctx.layout_of(op.inputs[0]) if rank == 4 else NATURAL
    a = alpha.astype(np.float32).reshape((1,) * (rank - alpha.ndim) + alpha.shape)
    if layout == CF:
        a = a.transpose(TO_CF)
    y = ctx.node("PRelu", [ctx.get(op.inputs[0], layout), ctx.const_input(op.inputs[1], a)])
    ctx.bind(op.outputs[0], y, layout)


@converter("FULLY_CONNECTED", inputs=(2, 3))
def fully_connected(ctx: Context, op: Operator) -> None:
    """FULLY_CONNECTED: the input flattened in TFLite's (NHWC) order to [-1, in], times
    weights [out, in] transposed, plus bias, the fused activation, then the output's shape."""
    opts = ctx.options(op, tflite.FullyConnectedOptions)
    if opts is not None and int(opts.WeightsFormat()) != 0:
        raise ctx.unsupported("FULLY_CONNECTED with shuffled (packed) weights")
    w = ctx.weights(op.inputs[1], 2)
    out = ctx.tensor(op.outputs[0]).shape
    src = ctx.tensor(op.inputs[0]).shape
    if math.prod(src) % w.shape[1] or out[-1] != w.shape[0]:
        raise ctx.fail(f"weights {list(w.shape)} do not fit {list(src)} -> {list(out)}")
    x = ctx.node("Reshape", [ctx.get(op.inputs[0]), ctx.int64s([-1, w.shape[1]], "_shape")])
    inputs = [x, ctx.const_input(op.inputs[1], w)]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        inputs.append(ctx.get(op.inputs[2]))
    y = ctx.activation(ctx.node("Gemm", inputs, transB=1), _fused(opts))
    y = ctx.node("Reshape", [y, ctx.int64s(list(out), "_shape")])
    ctx.bind(op.outputs[0], y)


@converter("DENSIFY")
def densify_op(ctx: Context, op: Operator) -> None:
    """DENSIFY of a sparse constant: the reader made it dense already, so it is an alias."""
    arr = ctx.const(op.inputs[0])
    if arr is None:
        raise ctx.unsupported("DENSIFY of a non-constant tensor")
    out = op.outputs[0]
    if tuple(arr.shape) != ctx.tensor(out).shape or out in ctx.values or out in ctx.consts:
        raise ctx.fail(f"DENSIFY to {list(ctx.tensor(out).shape)} from {list(arr.shape)}")
    ctx.consts[out] = arr


@converter("DEPTH_TO_SPACE")
def depth_to_space(ctx: Context, op: Operator) -> None:
    """DEPTH_TO_SPACE: TensorFlow's (NHWC) ordering is ONNX's DCR mode, channels-first."""
    opts = ctx.options(op, tflite.DepthToSpaceOptions)
    block = _check_int(ctx, "block size", int(opts.BlockSize()) if opts is not None else 0, 2)
    n, h, w, c = _nhwc(ctx, op.inputs[0])
    if c % (block * block) or ctx.tensor(op.outputs[0]).shape != (
        n,
        h * block,
        w * block,
        c // (block * block),
    ):
        raise ctx.fail(f"block {block} does not fit {[n, h, w, c]}")
    y = ctx.node("DepthToSpace", [ctx.get(op.inputs[0], CF)], blocksize=block, mode="DCR")
    ctx.bind(op.outputs[0], y, CF)


_BIG = (1 << 31) - 1


@converter("STRIDED_SLICE", inputs=(4, 4))
def strided_slice(ctx: Context, op: Operator) -> None:
    """STRIDED_SLICE with constant begin/end/strides; begin/end masks and shrink_axis_mask
    (ellipsis and new-axis masks are refused), in TFLite's axis order."""
    opts = ctx.options(op, tflite.StridedSliceOptions)
    masks = {
        k: int(getattr(opts, k)()) if opts is not None else 0
        for k in ("BeginMask", "EndMask", "EllipsisMask", "NewAxisMask", "ShrinkAxisMask")
    }
    if masks["EllipsisMask"] or masks["NewAxisMask"]:
        raise ctx.unsupported("STRIDED_SLICE with an ellipsis or new-axis mask")
    if opts is not None and hasattr(opts, "Offset") and bool(opts.Offset()):
        raise ctx.unsupported("STRIDED_SLICE with offset")
    rank = len(ctx.tensor(op.inputs[0]).shape)
    begin, end, steps = (ctx.int_const(op.inputs[i]) for i in (1, 2, 3))
    if not len(begin) == len(end) == len(steps) <= rank or 0 in steps:
        raise ctx.fail(f"begin {begin}, end {end}, strides {steps} do not fit rank {rank}")
    starts, ends = [], []
    for a, (b, e, s) in enumerate(zip(begin, end, steps, strict=True)):
        shrink = bool(masks["ShrinkAxisMask"] >> a & 1)
        starts.append((0 if s > 0 else _BIG) if masks["BeginMask"] >> a & 1 else b)
        if shrink:
            ends.append(b + 1 if b != -1 else _BIG)
        else:
            ends.append((_BIG if s > 0 else -_BIG) if masks["EndMask"] >> a & 1 else e)
    axes = list(range(len(begin)))
    y = ctx.node(
        "Slice",
        [
            ctx.get(op.inputs[0]),
            ctx.int64s(starts, "_starts"),
            ctx.int64s(ends, "_ends"),
            ctx.int64s(axes, "_axes"),
            ctx.int64s(steps, "_steps"),
        ],
    )
    shrunk = [a for a in axes if masks["ShrinkAxisMask"] >> a & 1]
    if shrunk:
        y = ctx.node("Squeeze", [y, ctx.int64s(shrunk, "_axes")])
    ctx.bind(op.outputs[0], y)
