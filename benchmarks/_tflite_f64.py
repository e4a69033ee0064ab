"""A float64 evaluation of a float .tflite graph, op by op, straight from the flatbuffer.

Independent of edgeopt's importer (no ONNX on the way): each builtin operator is written out
with torch in float64 from the TFLite kernels' definitions, and MediaPipe's three custom
operators (Landmarks2TransformMatrix, TransformLandmarks, TransformTensorBilinear) are a numpy
transcription of MediaPipe's kernels. Weights stored as float16 or float32 are widened exactly.
It covers the operators of 10 of the mediapipe wheel's 14 models, not DENSIFY (the 2 sparse
detectors) nor Convolution2DTransposeBias (the 2 selfie models): `evaluate` raises
NotImplementedError on those and on anything else it lacks. Used by tflite_float64.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import tflite
import torch
import torch.nn.functional as F
from flatbuffers import flexbuffers

T = torch.Tensor
_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_DTYPES = {tflite.TensorType.FLOAT32: "<f4", tflite.TensorType.FLOAT16: "<f2",
           tflite.TensorType.INT32: "<i4", tflite.TensorType.INT64: "<i8"}  # fmt: skip


def _options(op: tflite.Operator, cls: type) -> object:
    opts, table = cls(), op.BuiltinOptions()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _act(x: T, code: int) -> T:
    a = tflite.ActivationFunctionType
    fns: dict[int, Callable[[T], T]] = {
        a.NONE: lambda v: v, a.RELU: lambda v: v.clamp(min=0), a.RELU6: lambda v: v.clamp(0, 6),
        a.RELU_N1_TO_1: lambda v: v.clamp(-1, 1), a.TANH: torch.tanh,
    }  # fmt: skip
    if code not in fns:
        raise NotImplementedError(f"fused activation {code}")
    return fns[code](x)


def _same(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    total = max((-(-size // s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: T, kh: int, kw: int, s: tuple[int, int], d: tuple[int, int], value=0.0) -> T:
    ph, pw = _same(x.shape[2], kh, s[0], d[0]), _same(x.shape[3], kw, s[1], d[1])
    return F.pad(x, [pw[0], pw[1], ph[0], ph[1]], value=value)


def _conv(op, ins: list[T], depthwise: bool) -> T:
    o = _options(op, tflite.DepthwiseConv2DOptions if depthwise else tflite.Conv2DOptions)
    x, w = ins[0].permute(0, 3, 1, 2), ins[1]
    w = w.permute(3, 0, 1, 2) if depthwise else w.permute(0, 3, 1, 2)  # -> OIHW
    s, d = (o.StrideH(), o.StrideW()), (o.DilationHFactor(), o.DilationWFactor())
    if o.Padding() == tflite.Padding.SAME:
        x = _pad_same(x, w.shape[2], w.shape[3], s, d)
    b = ins[2] if len(ins) > 2 and ins[2] is not None else None
    y = F.conv2d(x, w, b, stride=s, dilation=d, groups=x.shape[1] if depthwise else 1)
    return _act(y, o.FusedActivationFunction()).permute(0, 2, 3, 1)


def _max_pool(op, x: T) -> T:
    o = _options(op, tflite.Pool2DOptions)
    k, s = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
    x = x.permute(0, 3, 1, 2)
    if o.Padding() == tflite.Padding.SAME:
        x = _pad_same(x, *k, s, (1, 1), value=-math.inf)
    return _act(F.max_pool2d(x, k, s), o.FusedActivationFunction()).permute(0, 2, 3, 1)


def _axis_bilinear(n_in: int, n_out: int, align: bool, half: bool) -> tuple[T, T, T]:
    # TFLite's ComputeInterpolationValues: lower = max(floor(s), 0), upper = min(ceil(s), n - 1).
    scale = (n_in - 1) / (n_out - 1) if align and n_out > 1 else n_in / n_out
    dst = torch.arange(n_out, dtype=torch.float64)
    src = (dst + 0.5) * scale - 0.5 if half else dst * scale
    lo = torch.floor(src).clamp(min=0)
    hi = torch.ceil(src).clamp(max=n_in - 1)
    return lo.long(), hi.long(), src - lo


def _resize(op, x: T, size: list[int]) -> T:
    o = _options(op, tflite.ResizeBilinearOptions)
    y0, y1, fy = _axis_bilinear(x.shape[1], size[0], o.AlignCorners(), o.HalfPixelCenters())
    x0, x1, fx = _axis_bilinear(x.shape[2], size[1], o.AlignCorners(), o.HalfPixelCenters())
    fy, fx = fy[None, :, None, None], fx[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    bottom = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    return top * (1 - fy) + bottom * fy


def _strided_slice(op, x: T, begin: list[int], end: list[int], strides: list[int]) -> T:
    o = _options(op, tflite.StridedSliceOptions)
    if o.EllipsisMask() or o.NewAxisMask() or o.Offset():
        raise NotImplementedError("STRIDED_SLICE with ellipsis/new-axis masks or offset")
    index: list[slice | int] = []
    for i, (b, e, s) in enumerate(zip(begin, end, strides, strict=True)):
        if o.ShrinkAxisMask() >> i & 1:
            index.append(b)
            continue
        b = None if o.BeginMask() >> i & 1 else b
        e = None if o.EndMask() >> i & 1 else e
        index.append(slice(b, e, s))
    if any(isinstance(i, slice) and (i.step or 1) < 0 for i in index):
        raise NotImplementedError("STRIDED_SLICE with a negative stride")
    return x[tuple(index)]


def _custom(name: str, options: dict, ins: list[np.ndarray]) -> np.ndarray:
    if name == "Landmarks2TransformMatrix":
        o = options
        return mp_matrix(ins[0], o["left_rotation_idx"], o["right_rotation_idx"], o["subset_idxs"],
                         o["target_rotation_radians"], o["output_height"], o["output_width"],
                         o["scale_x"], o["scale_y"])  # fmt: skip
    if name == "TransformLandmarks":
        return mp_transform_landmarks(ins[0], ins[1])
    if name == "TransformTensorBilinear":
        return mp_transform_tensor(
            ins[0], ins[1], options["output_height"], options["output_width"]
        )
    raise NotImplementedError(f"CUSTOM:{name}")


def _run_op(kind: str, op, ins: list, out_shape: tuple[int, ...]) -> T:
    x = ins[0]
    simple = {"LOGISTIC": torch.sigmoid, "TANH": torch.tanh, "RELU": lambda v: v.clamp(min=0),
              "RELU6": lambda v: v.clamp(0, 6), "DEQUANTIZE": lambda v: v,
              "HARD_SWISH": lambda v: v * (v + 3).clamp(0, 6) / 6}  # fmt: skip
    if kind in simple:
        return simple[kind](x)
    binary = {"ADD": (torch.add, tflite.AddOptions), "MUL": (torch.mul, tflite.MulOptions),
              "SUB": (torch.sub, tflite.SubOptions)}  # fmt: skip
    if kind in binary:
        fn, cls = binary[kind]
        return _act(fn(x, ins[1]), _options(op, cls).FusedActivationFunction())
    if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return _conv(op, ins, kind == "DEPTHWISE_CONV_2D")
    if kind == "MAX_POOL_2D":
        return _max_pool(op, x)
    if kind == "PAD":
        return F.pad(x, [q for pair in reversed(ins[1].tolist()) for q in pair])
    if kind == "PRELU":
        return torch.where(x >= 0, x, x * ins[1])
    if kind == "RESHAPE":
        return x.reshape(out_shape)
    if kind == "RESIZE_BILINEAR":
        return _resize(op, x, ins[1].tolist())
    if kind == "CONCATENATION":
        o = _options(op, tflite.ConcatenationOptions)
        return _act(torch.cat(ins, dim=o.Axis()), o.FusedActivationFunction())
    if kind == "MEAN":
        axes = [int(a) for a in ins[1].reshape(-1).tolist()]
        return x.mean(dim=axes, keepdim=bool(_options(op, tflite.ReducerOptions).KeepDims()))
    if kind == "FULLY_CONNECTED":
        o = _options(op, tflite.FullyConnectedOptions)
        b = ins[2] if len(ins) > 2 else None
        y = F.linear(x.reshape(-1, ins[1].shape[1]), ins[1], b)
        return _act(y, o.FusedActivationFunction()).reshape(out_shape)
    if kind == "STRIDED_SLICE":
        return _strided_slice(op, x, *(ins[i].tolist() for i in (1, 2, 3)))
    raise NotImplementedError(kind)


def evaluate(data: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run subgraph 0 of the .tflite ``data`` in float64; feeds and results keyed by name."""
    m = tflite.Model.GetRootAsModel(data, 0)
    g = m.Subgraphs(0)
    vals: dict[int, T] = {}
    for i in range(g.TensorsLength()):
        t = g.Tensors(i)
        buf = m.Buffers(t.Buffer()).DataAsNumpy()
        if isinstance(buf, int) or buf is None or len(buf) == 0 or t.Sparsity() is not None:
            continue  # no data, or sparse (read by DENSIFY only, which this lacks)
        if t.Type() not in _DTYPES:
            raise NotImplementedError(f"constant of TFLite type {t.Type()}")
        a = np.frombuffer(buf.tobytes(), _DTYPES[t.Type()]).reshape(tuple(t.ShapeAsNumpy()))
        vals[i] = torch.from_numpy(a.astype(np.float64 if a.dtype.kind == "f" else np.int64))
    for j in range(g.InputsLength()):
        vals[g.Inputs(j)] = torch.from_numpy(feeds[g.Tensors(g.Inputs(j)).Name().decode()])
        vals[g.Inputs(j)] = vals[g.Inputs(j)].to(torch.float64)
    for k in range(g.OperatorsLength()):
        op = g.Operators(k)
        code = m.OperatorCodes(op.OpcodeIndex())
        kind = _NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        if kind == "DENSIFY":
            raise NotImplementedError(kind)
        ins = [vals[i] if i >= 0 else None for i in op.InputsAsNumpy().tolist()]
        out = op.Outputs(0)
        out_shape = tuple(int(d) for d in g.Tensors(out).ShapeAsNumpy())
        if kind == "CUSTOM":
            raw = bytes(op.CustomOptionsAsNumpy()) if op.CustomOptionsLength() else b""
            options = flexbuffers.Loads(raw) if raw else {}
            y = _custom(code.CustomCode().decode(), options, [v.numpy() for v in ins])
            vals[out] = torch.from_numpy(np.asarray(y, dtype=np.float64))
        else:
            vals[out] = _run_op(kind, op, ins, out_shape)
    outs = [g.Outputs(j) for j in range(g.OutputsLength())]
    return {g.Tensors(j).Name().decode(): vals[j].numpy() for j in outs}


# MediaPipe's custom operators, transcribed from mediapipe/util/tflite/operations/*.cc.


def mp_matrix(lm, left, right, subset, target, out_h, out_w, sx, sy) -> np.ndarray:
    """Landmarks2TransformMatrix (v2): [1, N*3] landmarks -> [1, 4, 4] matrix."""
    p = lm.reshape(-1, 3)
    r = target - math.atan2(p[right, 1] - p[left, 1], p[right, 0] - p[left, 0])
    rot = np.array([[math.cos(r), -math.sin(r)], [math.sin(r), math.cos(r)]])
    pts = p[list(subset), :2] @ rot.T
    hi, lo = pts.max(0), pts.min(0)
    w, h = hi - lo
    cx, cy = np.linalg.inv(rot) @ ((hi + lo) / 2)

    def shift(a: float, b: float) -> np.ndarray:
        return np.array([[1, 0, 0, a], [0, 1, 0, b], [0, 0, 1, 0], [0, 0, 0, 1.0]])

    rm = np.eye(4)
    rm[:2, :2] = np.linalg.inv(rot)
    scale = np.diag([sx * w / out_w, sy * h / out_h, 1, 1])
    return (shift(cx, cy) @ rm @ scale @ shift(-out_w / 2, -out_h / 2))[None]


def mp_transform_landmarks(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """TransformLandmarks: x, y of [1, N, 3] landmarks through the 4x4 matrix; z kept."""
    m, out = m.reshape(4, 4), pts.copy()
    out[..., 0] = m[0, 0] * pts[..., 0] + m[0, 1] * pts[..., 1] + m[0, 3]
    out[..., 1] = m[1, 0] * pts[..., 0] + m[1, 1] * pts[..., 1] + m[1, 3]
    return out


def mp_transform_tensor(x: np.ndarray, m: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TransformTensorBilinear (v2): sample [1, H, W, C] at the matrix-mapped pixel centres."""
    m = m.reshape(4, 4)
    h, w = x.shape[1:3]
    xt, yt = m[0].copy(), m[1].copy()
    xt[3] += xt[0] * 0.5 + xt[1] * 0.5 - 0.5
    yt[3] += yt[0] * 0.5 + yt[1] * 0.5 - 0.5
    oy, ox = np.mgrid[0:out_h, 0:out_w].astype(np.float64)
    tx, ty = xt[0] * ox + xt[1] * oy + xt[3], yt[0] * ox + yt[1] * oy + yt[3]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)  # outside: zero
    tx, ty = np.where(inside, tx, 0), np.where(inside, ty, 0)
    fx, fy = np.floor(tx).astype(int), np.floor(ty).astype(int)
    rx, ry = (tx - fx)[..., None], (ty - fy)[..., None]
    pad = np.pad(x[0], ((0, 1), (0, 1), (0, 0)))  # reads past the edge are zero
    up = (1 - rx) * pad[fy, fx] + rx * pad[fy, fx + 1]
    low = (1 - rx) * pad[fy + 1, fx] + rx * pad[fy + 1, fx + 1]
    return np.where(inside[..., None], ry * low + (1 - ry) * up, 0.0)[None]
