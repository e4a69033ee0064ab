"""Converters of MediaPipe's landmark custom operators, decomposed into standard ONNX operators.

face_landmark_with_attention.tflite crops feature maps around the lips and eyes with three
custom operators (version 2 of each, the one MediaPipe registers under these names; version 1
takes rank-4 inputs and is refused). Their semantics, as MediaPipe's kernels define them:

- ``Landmarks2TransformMatrix`` ([1, N, 3] landmarks -> [1, 4, 4]): with ``phi`` the angle of
  the segment from landmark ``left_rotation_idx`` to ``right_rotation_idx`` and ``r =
  target_rotation_radians - phi``, the subset landmarks are rotated by ``R(r)``; their
  bounding box gives the size ``(w, h)`` and, rotated back by ``R(-r)``, the centre ``c``. The
  matrix maps crop pixels to input coordinates: ``T = shift(c) R(-r) scale(scale_x w /
  output_width, scale_y h / output_height) shift(-output_width / 2, -output_height / 2)``.
  Written out, its upper-left 2x2 block is ``A = [[cos r, sin r], [-sin r, cos r]]`` with its
  columns scaled by those two factors, and its translation ``A (-W/2, -H/2) + c``. ``cos r``
  and ``sin r`` come from the segment's unit vector by the angle-difference identities, so no
  atan2 is needed (ONNX has none); a zero-length segment gives ``phi = 0`` as atan2(0, 0) does.
- ``TransformLandmarks`` ([1, N, D] and a [1, 4, 4] matrix, D = 2 or 3): ``(x, y) -> A (x, y)
  + t`` with the matrix's upper-left block and translation; z passes through.
- ``TransformTensorBilinear`` ([1, H, W, C] and a matrix -> [1, oh, ow, C]): output pixel
  ``(i, j)`` samples the input bilinearly at ``A (j + 0.5, i + 0.5) + t - 0.5`` (MediaPipe's
  "align corners correction"), and is 0 where that point lies outside ``[0, W-1] x [0, H-1]``.
  That is GridSample with ``align_corners=1`` (grid ``2 p / (size - 1) - 1``) times an
  inside-mask: GridSample alone would blend with the zero padding within a pixel of the edge.

LiteRT's Python interpreter does not have these operators, so the tests compare with a NumPy
transcription of the semantics above.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from flatbuffers import flexbuffers

from edgeopt.frontends._tflite_ops import CF, Context, Operator, converter

__all__: list[str] = []


def _flex_options(ctx: Context, op: Operator) -> dict[str, Any]:
    try:
        opts = flexbuffers.Loads(op.custom_options)
    except Exception as e:  # a corrupt flexbuffer fails in many ways
        raise ctx.fail(f"custom options are not a flexbuffer: {e}") from e
    if not isinstance(opts, dict):
        raise ctx.fail("custom options are not a flexbuffer map")
    return opts


def _option(ctx: Context, opts: dict[str, Any], key: str, kind: type) -> Any:
    value = opts.get(key)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ctx.fail(f"custom option {key!r} is {value!r}, expected {kind.__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ctx.fail(f"custom option {key!r} is {value}")
    return value


def _shape(ctx: Context, index: int, rank: int, what: str) -> list[int]:
    shape = list(ctx.tensor(index).shape)
    if len(shape) != rank or shape[0] != 1:
        raise ctx.unsupported(f"{ctx.op.kind if ctx.op else what} on a {what} of shape {shape}")
    return shape


def _matrix_rows(ctx: Context, op: Operator) -> tuple[str, str]:
    """The [1, 4, 4] matrix operand's upper-left 2x2 block ``A`` and translation ``t`` ([2])."""
    m = ctx.get(op.inputs[1])
    if list(ctx.tensor(op.inputs[1]).shape) != [1, 4, 4]:
        raise ctx.fail(
            f"matrix of shape {list(ctx.tensor(op.inputs[1]).shape)}, expected [1, 4, 4]"
        )
    axes = ctx.int64s([1, 2], "_axes")
    a = ctx.node("Slice", [m, ctx.int64s([0, 0], "_starts"), ctx.int64s([2, 2], "_ends"), axes])
    t = ctx.node("Slice", [m, ctx.int64s([0, 3], "_starts"), ctx.int64s([2, 4], "_ends"), axes])
    a = ctx.node("Reshape", [a, ctx.int64s([2, 2], "_shape")])
    return a, ctx.node("Reshape", [t, ctx.int64s([2], "_shape")])


@converter("CUSTOM:Landmarks2TransformMatrix")
def landmarks_to_transform_matrix(ctx: Context, op: Operator) -> None:
    """Version 2: the crop matrix from a landmark pair's angle and a subset's bounding box."""
    n = _shape(ctx, op.inputs[0], 3, "landmarks")[1]
    if ctx.tensor(op.inputs[0]).shape[2] != 3:
        raise ctx.unsupported("Landmarks2TransformMatrix on landmarks that are not 3D")
    opts = _flex_options(ctx, op)
    left = _option(ctx, opts, "left_rotation_idx", int)
    right = _option(ctx, opts, "right_rotation_idx", int)
    subset = opts.get("subset_idxs")
    if not isinstance(subset, list) or not subset:
        raise ctx.fail(f"custom option 'subset_idxs' is {subset!r}, expected a list")
    for i in [left, right, *subset]:
        if not isinstance(i, int) or not 0 <= i < n:
            raise ctx.fail(f"landmark index {i!r} outside 0..{n - 1}")
    out_h = _option(ctx, opts, "output_height", int)
    out_w = _option(ctx, opts, "output_width", int)
    if out_h <= 0 or out_w <= 0:
        raise ctx.fail(f"output size {out_h}x{out_w}")
    scale = [_option(ctx, opts, f"scale_{a}", float) for a in "xy"]
    target = _option(ctx, opts, "target_rotation_radians", float)

    flat = ctx.node("Reshape", [ctx.get(op.inputs[0]), ctx.int64s([-1], "_shape")])

    def xy(indices: list[int], hint: str) -> str:
        rows = np.array([[3 * i, 3 * i + 1] for i in indices], np.int64)
        return ctx.node("Gather", [flat, ctx.initializer(rows, hint)])

    # The segment's unit vector (cos phi, sin phi), and (cos r, sin r) for r = target - phi.
    d = ctx.node("Sub", [xy([right], "_right"), xy([left], "_left")])
    d = ctx.node("Reshape", [d, ctx.int64s([2], "_shape")])
    norm = ctx.node("Sqrt", [ctx.node("ReduceSum", [ctx.node("Mul", [d, d])], keepdims=1)])
    unit = ctx.node("Div", [d, norm])
    zero_phi = ctx.initializer(np.array([1.0, 0.0], np.float32), "_unit_x")
    unit = ctx.node("Where", [ctx.node("Greater", [norm, ctx.scalar(0.0)]), unit, zero_phi])
    ct, st = math.cos(target), math.sin(target)
    diff = ctx.initializer(np.array([[ct, st], [st, -ct]], np.float32), "_angle_difference")
    cs = ctx.node("MatMul", [unit, diff])  # (cos r, sin r)
    # rot = [[cos r, sin r], [-sin r, cos r]]: points (rows) @ rot rotate by r; rot, as a
    # column-vector matrix, rotates by -r.
    swapped = ctx.node("Gather", [cs, ctx.int64s([1, 0], "_swap")])
    flip = ctx.initializer(np.array([-1.0, 1.0], np.float32), "_flip")
    rot = ctx.node("Concat", [cs, ctx.node("Mul", [swapped, flip])], axis=0)
    rot = ctx.node("Reshape", [rot, ctx.int64s([2, 2], "_shape")])
    rotated = ctx.node("MatMul", [xy(subset, "_subset"), rot])
    high = ctx.node("ReduceMax", [rotated], axes=[0], keepdims=0)
    low = ctx.node("ReduceMin", [rotated], axes=[0], keepdims=0)
    size = ctx.node("Sub", [high, low])
    middle = ctx.node("Mul", [ctx.node("Add", [high, low]), ctx.scalar(0.5)])
    centre = ctx.node("MatMul", [rot, middle])
    factors = np.array([scale[0] / out_w, scale[1] / out_h], np.float32)
    a = ctx.node("Mul", [rot, ctx.node("Mul", [size, ctx.initializer(factors, "_scale")])])
    half = ctx.initializer(np.array([-out_w / 2, -out_h / 2], np.float32), "_half_size")
    t = ctx.node("Add", [ctx.node("MatMul", [a, half]), centre])
    zeros = ctx.initializer(np.zeros((2, 1), np.float32), "_zeros")
    top = ctx.node(
        "Concat", [a, zeros, ctx.node("Reshape", [t, ctx.int64s([2, 1], "_shape")])], axis=1
    )
    bottom = ctx.initializer(np.array([[0, 0, 1, 0], [0, 0, 0, 1]], np.float32), "_bottom")
    m = ctx.node("Concat", [top, bottom], axis=0)
    ctx.bind(op.outputs[0], ctx.node("Reshape", [m, ctx.int64s([1, 4, 4], "_shape")]))


@converter("CUSTOM:TransformLandmarks", inputs=(2, 2))
def transform_landmarks(ctx: Context, op: Operator) -> None:
    """Version 2: ``(x, y) -> A (x, y) + t``; z, if present, is kept."""
    dims = _shape(ctx, op.inputs[0], 3, "landmarks")[2]
    if dims not in (2, 3):
        raise ctx.unsupported(f"TransformLandmarks on {dims}-D landmarks")
    a, t = _matrix_rows(ctx, op)
    points = ctx.get(op.inputs[0])
    axis = ctx.int64s([2], "_axes")
    xy = ctx.node("Slice", [points, ctx.int64s([0], "_starts"), ctx.int64s([2], "_ends"), axis])
    y = ctx.node("Add", [ctx.node("MatMul", [xy, ctx.node("Transpose", [a], perm=[1, 0])]), t])
    if dims == 3:
        z = ctx.node("Slice", [points, ctx.int64s([2], "_starts"), ctx.int64s([3], "_ends"), axis])
        y = ctx.node("Concat", [y, z], axis=2)
    ctx.bind(op.outputs[0], y)


@converter("CUSTOM:TransformTensorBilinear", inputs=(2, 2))
def transform_tensor_bilinear(ctx: Context, op: Operator) -> None:
    """Version 2: an affine bilinear warp, GridSample masked to the input's extent."""
    _, height, width, _ = _shape(ctx, op.inputs[0], 4, "tensor")
    if height < 2 or width < 2:
        raise ctx.unsupported(f"TransformTensorBilinear on a {height}x{width} input")
    opts = _flex_options(ctx, op)
    out_h = _option(ctx, opts, "output_height", int)
    out_w = _option(ctx, opts, "output_width", int)
    if not (0 < out_h <= 1 << 14 and 0 < out_w <= 1 << 14):
        raise ctx.fail(f"output size {out_h}x{out_w}")
    a, t = _matrix_rows(ctx, op)
    # Output pixel centres (j + 0.5, i + 0.5), row-major; coords = centres @ A^T + t - 0.5.
    i, j = np.meshgrid(np.arange(out_h), np.arange(out_w), indexing="ij")
    centres = np.stack([j.ravel() + 0.5, i.ravel() + 0.5], axis=1).astype(np.float32)
    coords = ctx.node(
        "MatMul",
        [ctx.initializer(centres, "_pixel_centres"), ctx.node("Transpose", [a], perm=[1, 0])],
    )
    coords = ctx.node("Sub", [ctx.node("Add", [coords, t]), ctx.scalar(0.5)])
    limit = np.array([width - 1, height - 1], np.float32)
    inside = ctx.node(
        "And",
        [
            ctx.node("GreaterOrEqual", [coords, ctx.scalar(0.0)]),
            ctx.node("LessOrEqual", [coords, ctx.initializer(limit, "_limit")]),
        ],
    )
    inside = ctx.node("ReduceMin", [ctx.node("Cast", [inside], to=1)], axes=[1], keepdims=0)
    mask = ctx.node("Reshape", [inside, ctx.int64s([1, 1, out_h, out_w], "_shape")])
    grid = ctx.node("Mul", [coords, ctx.initializer(2 / limit, "_grid_scale")])
    grid = ctx.node("Sub", [grid, ctx.scalar(1.0)])
    grid = ctx.node("Reshape", [grid, ctx.int64s([1, out_h, out_w, 2], "_shape")])
    y = ctx.node(
        "GridSample",
        [ctx.get(op.inputs[0], CF), grid],
        align_corners=1,
        mode="bilinear",
        padding_mode="zeros",
    )
    ctx.bind(op.outputs[0], ctx.node("Mul", [y, mask]), CF)
