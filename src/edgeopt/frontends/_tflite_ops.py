"""The TFLite operator converters, and the graph-building context they share.

Each converter turns one TFLite operator into ONNX nodes and is registered under the
operator's name with :func:`converter`; the converters live in `_tflite_nn` (convolutions,
pooling, ...), `_tflite_tensors` (constants, element-wise and shape operators) and
`_tflite_mediapipe` (MediaPipe's landmark custom operators): adding an operator means adding
one function there.
Custom operators are registered as ``"CUSTOM:<custom_code>"``.

Layouts: a rank-4 TFLite activation is NHWC. ONNX's Conv, pooling and Resize want NCHW, so
every rank-4 value may exist in two layouts, ``NATURAL`` (TFLite's axis order) and ``CF``
(channels first). A converter asks for the layout it needs with :meth:`Context.get`, and a
Transpose is made only when that layout does not exist yet (then cached), so layout-agnostic
operators (activations, element-wise arithmetic) never add a transpose pair.
"""

from __future__ import annotations

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
