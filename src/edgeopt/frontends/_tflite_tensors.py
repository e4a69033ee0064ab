"""TFLite tensor operators to ONNX: constants (dequantize, densify), element-wise arithmetic and
activations, and shape operators (concatenate, pad, reshape, depth-to-space, strided slice).
Registered with `edgeopt.frontends._tflite_ops.converter`.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import tflite

from edgeopt.frontends._tflite_ops import (
    _MAX_ATTR,
    CF,
    NATURAL,
    TO_CF,
    Context,
    Operator,
    _cf_axis,
    _check_int,
    _finish,
    _fused,
    _nhwc,
    converter,
)


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
