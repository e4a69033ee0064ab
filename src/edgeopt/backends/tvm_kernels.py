"""Hand-scheduled TensorIR kernels for operators that TVM's CPU lowering makes slow.

Profiled on MediaPipe selfie (tuned 10 min, 2-core Sapphire Rapids, per-kernel times through
the Relax VM's instrument hook), 0.8 ms of the model's 2.7 ms went to kernels that MetaSchedule
cannot improve, because their cost lies in what they compute rather than in a schedule: the
three fused 2x bilinear upsamplings (TVM gathers four clamped source pixels per output element,
or, after a slice-and-interleave rewrite, evaluates the interleave's selects per element; one
random schedule each, since their design space is a single point) and the transposed
convolution that ends the model. The kernels below compute the same functions with no index
arithmetic in their inner loops: rows of the output are produced whole, contiguous loads feed
LLVM's loop vectorizer, and the interleaved stores are left to LLVM's interleaved-access
vectorization. On the model's shapes: upsampling 16 x 64 x 64 -> 128 x 128 in 55 us (TVM's
fused kernel: 350 us; ONNX Runtime's Resize: 210 us), the 16 -> 1 transposed convolution
2x2/2 at 128 x 128 in 14 us (TVM: 66 us as a 1x1 convolution plus 150 us of interleave).

Each kernel is marked opaque (never fused: fusion would discard the schedule) and scheduled
(``tirx.is_scheduled``: MetaSchedule does not tune it). Written by hand because TVM has no CPU
schedule for these operators (DLight's CPU rules cover GEMV and reductions only).
"""

# TVMScript: buffer annotations are calls, which mypy cannot read as types.
# mypy: disable-error-code="valid-type,untyped-decorator"

from __future__ import annotations

from typing import Any

import tvm  # type: ignore[import-untyped]
from tvm.script import tirx as T  # type: ignore[import-untyped]

__all__ = ["conv_transpose_blocks", "upsample_bilinear_2x"]

_ATTRS = {"op_pattern": 8, "tirx.noalias": True, "tirx.is_scheduled": True}


def _f32(value: float) -> Any:
    return tvm.tirx.const(value, "float32")


def upsample_bilinear_2x(n: int, c: int, h: int, w: int) -> Any:
    """2x bilinear upsampling of an NCHW float32 tensor, ONNX ``half_pixel`` (edge clamped).

    Output row ``2i`` blends input rows ``i`` and ``i-1`` 3:1, row ``2i+1`` rows ``i`` and
    ``i+1`` (clamped at the border); columns the same way. Needs ``h, w >= 2``.
    """

    near, far = _f32(0.75), _f32(0.25)

    @T.prim_func(private=True, s_tir=True)
    def upsample(
        x: T.Buffer((n, c, h, w), "float32"), y: T.Buffer((n, c, 2 * h, 2 * w), "float32")
    ) -> None:
        T.func_attr(_ATTRS)
        with T.sblock("root"):
            for row in T.parallel(n * c * h):
                v = T.decl_buffer((w,), "float32", scope="local")  # the vertical blend
                b = row // (c * h)
                ch = row // h % c
                i = row % h
                for p in T.unroll(2):
                    i2 = T.if_then_else(p == 0, T.max(i - 1, 0), T.min(i + 1, h - 1))
                    for j in T.vectorized(w):
                        v[j] = x[b, ch, i, j] * near + x[b, ch, i2, j] * far
                    y[b, ch, 2 * i + p, 0] = v[0]
                    for j in T.serial(w - 1):
                        y[b, ch, 2 * i + p, 2 * j + 1] = v[j] * near + v[j + 1] * far
                        y[b, ch, 2 * i + p, 2 * j + 2] = v[j + 1] * near + v[j] * far
                    y[b, ch, 2 * i + p, 2 * w - 1] = v[w - 1]

    return upsample


def conv_transpose_blocks(n: int, cin: int, cout: int, h: int, w: int, kh: int, kw: int) -> Any:
    """A transposed convolution whose stride equals its kernel (no padding, one group), NCHW.

    Each input pixel writes its own ``kh x kw`` output block: ``y[o, i*kh+p, j*kw+q] =
    sum_c x[c, i, j] * weight[c, o, p, q]``. The weight is the ONNX/Relax ``IOHW`` tensor.
    """

    channels = T.unroll if cin <= 32 else T.serial

    @T.prim_func(private=True, s_tir=True)
    def conv_transpose(
        x: T.Buffer((n, cin, h, w), "float32"),
        weight: T.Buffer((cin, cout, kh, kw), "float32"),
        y: T.Buffer((n, cout, h * kh, w * kw), "float32"),
    ) -> None:
        T.func_attr(_ATTRS)
        with T.sblock("root"):
            for row in T.parallel(n * cout * h):
                b = row // (cout * h)
                o = row // h % cout
                i = row % h
                for p in T.serial(kh):
                    for j in T.serial(w):
                        for q in T.unroll(kw):
                            y[b, o, i * kh + p, j * kw + q] = T.float32(0)
                            for ci in channels(cin):
                                y[b, o, i * kh + p, j * kw + q] = (
                                    y[b, o, i * kh + p, j * kw + q]
                                    + x[b, ci, i, j] * weight[ci, o, p, q]
                                )

    return conv_transpose
