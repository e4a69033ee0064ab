"""TFLite neural-network operators to ONNX: convolutions, pooling, fully connected, PReLU,
softmax, mean and bilinear resize. Registered with `edgeopt.frontends._tflite_ops.converter`.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import tflite

from edgeopt.frontends._tflite_ops import (
    CF,
    NATURAL,
    TO_CF,
    Context,
    Operator,
    _bias,
    _cf_axis,
    _check_int,
    _finish,
    _fused,
    _kernel,
    _nhwc,
    _pads,
    _strides,
    converter,
)


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
