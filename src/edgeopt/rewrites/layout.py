"""The ONNX Runtime layout rules: exact rewrites that keep more of a CNN in ORT's blocked layout.

The ``ort_layout`` pass runs them all; the TVM backend runs ``resize_conv_swap`` before its Relax
import (there the conv then runs at the lower resolution).

ONNX Runtime's ``NchwcTransformer`` (CPUs with AVX2/AVX-512) runs Conv, pooling, Add, Mul,
Relu/Sigmoid, Concat and integer-scale Resize in a channel-blocked layout ("NCHWc", 8 or 16
channels per block). Every tensor that leaves that set costs a ``ReorderOutput`` and, on the way
back, a ``ReorderInput``. On MediaPipe selfie segmentation a sixth of ORT's time went to those
conversions. Read from ``onnxruntime/core/optimizer/nchwc_transformer.cc``: a binary Mul stays
blocked only when *both* inputs are blocked and of *equal* shape, so the squeeze-excite
``Mul(x[N,C,H,W], s[N,C,1,1])`` forces both operands (and everything after) out of the blocked
layout; Resize stays blocked only when its input already is.

The rewrites, each exact (the same function; only float rounding order can change):

``se_broadcast``
    ``Mul(x, s)`` with ``s`` of shape [N,C,1,1] becomes ``Mul(x, Resize(s))``: a nearest Resize
    with integer scales [1,1,H,W] (asymmetric, floor) broadcasts ``s`` by copying. ORT keeps
    that Resize and the now equal-shaped Mul blocked. Bit-exact.
``resize_conv_swap``
    ``Conv1x1(Resize(x))`` becomes ``Resize(Conv1x1(x))`` when the Resize scales only H and W
    and is nearest or linear (not ``tf_crop_and_resize``): interpolation is a per-channel
    linear map whose weights sum to one, so it commutes with a pointwise conv and its bias. The
    conv then runs at the low resolution, and the Resize moves to the conv's output channels.
``nhwc_input_conv``
    ``Conv(Transpose(x, [0,3,1,2]))`` on an NHWC input becomes a one-channel conv on ``x``
    reshaped (for free) to [N,1,H,W*C], with kernel [kh, kw*C] and strides [sh, sw*C]: the
    layout transpose disappears and ORT reads the NCHW buffer directly.
``transpose_to_reshape``
    A Transpose that moves only size-1 axes (the NHWC output of a 1-channel mask) is a Reshape.
    Off by default: on the selfie models it saves ~4 us of ~1100, below what we can measure.

Measured on MediaPipe selfie (general) with ORT 1.32, 1 thread, AVX-512, interleaved on a shared
2-core machine: ReorderInput/Output 11/26 -> 1/3; se_broadcast 1.20x, + resize_conv_swap
1.33x, + nhwc_input_conv 1.39x; outputs within 8e-5 of the original on real images (ORT's own
optimization levels differ from each other by 1e-4 to 4e-4 on the same images).

Rewrites measured and dropped because they did not pay on ORT 1.32 / AVX-512 (see
``benchmarks/layout_rewrites.py``): the SE broadcast through Expand (not a
blocked op, 0.96x), ConvTranspose(stride = kernel) as Conv1x1 + DepthToSpace (0.95x) or as
per-row convs + Concat (0.90x) or as Conv1x1 + channels-last Transpose (0.89x), splitting
``GlobalAveragePool(Add(a, b))`` (no change), and bilinear 2x as nearest 2x + depthwise
[1,2,1]/4 (15% faster in isolation but wrong on the border rows without a mask that costs more).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.rewriter import MatchResult

from edgeopt.rewrites._rule import Rule, attr, constant, dims, fresh_name

__all__ = ["NhwcInputConv", "ResizeConvSwap", "SeBroadcast", "TransposeToReshape"]


class SeBroadcast(Rule):
    """``Mul(x, s)``, s of shape [N,C,1,1] computed in the graph -> ``Mul(x, Resize(s))``.

    A nearest Resize with integer scales [1,1,H,W] (asymmetric, floor) copies ``s`` to x's shape:
    bit-exact. ORT then keeps the Resize and the equal-shaped Mul in its blocked layout.
    """

    option = "se_broadcast"

    def pattern(self, op: Any, a: ir.Value, b: ir.Value) -> Any:
        return op.Mul(a, b, _outputs=["out"])

    @staticmethod
    def _roles(a: ir.Value, b: ir.Value) -> tuple[ir.Value, ir.Value]:
        db = dims(b)
        return (a, b) if db is not None and db[2:] == [1, 1] else (b, a)

    def check(self, context: Any, a: ir.Value, b: ir.Value, out: ir.Value) -> MatchResult:
        big, small = self._roles(a, b)
        if a.producer() in self.made or b.producer() in self.made:
            return self.unrelated("made by this rule")
        sb, ss = dims(big), dims(small)
        if sb is None or ss is None:
            return self.decline("an operand's shape is not static")
        if len(sb) != 4 or len(ss) != 4 or ss[2:] != [1, 1] or ss[:2] != sb[:2]:
            return self.unrelated("not a [N,C,H,W] x [N,C,1,1] multiply")
        if sb[2] * sb[3] == 1:
            return self.unrelated("both operands are [N,C,1,1]")
        if constant(small) is not None:
            return self.decline("the scale is a constant (ORT fuses it into the Conv)")
        return MatchResult()

    def rewrite(self, op: Any, a: ir.Value, b: ir.Value, out: ir.Value) -> Any:
        big, small = self._roles(a, b)
        height, width = (dims(big) or [])[2:]
        scales = op.initializer(
            ir.tensor(np.array([1, 1, height, width], np.float32)), name=fresh_name(small, "bcast")
        )
        wide = op.Resize(
            small,
            None,
            scales,
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
        self.matched.append(f"Mul -> {out.name}")
        self.made.add(wide.producer())
        return op.Mul(big, wide) if big is a else op.Mul(wide, big)


def _pointwise(conv: ir.Node) -> str | None:
    """Why ``conv`` is not a plain 1x1 convolution (None when it is)."""
    w = dims(conv.inputs[1])
    if w is None or len(w) != 4 or w[2:] != [1, 1]:
        return "the Conv is not 1x1"
    if int(attr(conv, "group", 1)) != 1:
        return "the Conv is grouped"
    if list(attr(conv, "strides", [1, 1])) != [1, 1]:
        return "the Conv is strided"
    if list(attr(conv, "dilations", [1, 1])) != [1, 1]:
        return "the Conv is dilated"
    if any(attr(conv, "pads", [0, 0, 0, 0])) or attr(conv, "auto_pad", "NOTSET") not in (
        "NOTSET",
        "VALID",
    ):
        return "the Conv is padded"
    return None


def _resize_problem(resize: ir.Node) -> str | None:
    """Why ``resize`` does not commute with a pointwise conv (None when it does)."""
    if attr(resize, "mode", "nearest") not in ("nearest", "linear"):
        return "the Resize is cubic"
    if attr(resize, "coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize":
        return "the Resize crops"
    if int(attr(resize, "antialias", 0)) or "axes" in resize.attributes:
        return "the Resize antialiases or names axes"
    if attr(resize, "keep_aspect_ratio_policy", "stretch") != "stretch":
        return "the Resize keeps the aspect ratio"
    sin, sout = dims(resize.inputs[0]), dims(resize.outputs[0])
    if sin is None or sout is None or len(sin) != 4 or sin[:2] != sout[:2]:
        return "the Resize is not a static spatial (H, W) resize"
    if any(v is not None and constant(v) is None for v in resize.inputs[1:]):
        return "the Resize's scales or sizes are computed"
    return None


class ResizeConvSwap(Rule):
    """``Conv1x1(Resize(x))`` -> ``Resize(Conv1x1(x))`` for a nearest/linear spatial Resize.

    Interpolation is a per-channel linear map whose weights sum to one, so it commutes with a
    pointwise conv and its bias: y = W (R x) + b = R (W x + b). The conv runs at the low
    resolution; the Resize moves to the conv's output channels (its ``sizes``, if given, too).
    """

    option = "resize_conv_swap"

    def pattern(self, op: Any, x: ir.Value, w: ir.Value) -> Any:
        return op.Conv(
            op.Resize(x, _allow_other_inputs=True, _outputs=["resized"]),
            w,
            _allow_other_inputs=True,
            _outputs=["out"],
        )

    def check(
        self, context: Any, x: ir.Value, w: ir.Value, resized: ir.Value, out: ir.Value
    ) -> MatchResult:
        resize, conv = resized.producer(), out.producer()
        assert resize is not None and conv is not None
        why = _resize_problem(resize) or _pointwise(conv)
        if why is None and any(constant(v) is None for v in conv.inputs[1:] if v is not None):
            why = "the Conv's weights are not constants"
        return self.decline(why) if why else MatchResult()

    def rewrite(self, op: Any, x: ir.Value, w: ir.Value, resized: ir.Value, out: ir.Value) -> Any:
        resize, conv = resized.producer(), out.producer()
        assert resize is not None and conv is not None
        low = op.Conv(x, *conv.inputs[1:], **{k: a.value for k, a in conv.attributes.items()})
        extra = list(resize.inputs[1:])
        if len(extra) > 2 and extra[2] is not None:
            sizes = np.array(constant(extra[2]), np.int64)
            sizes[1] = (dims(w) or [0])[0]
            extra[2] = op.initializer(ir.tensor(sizes), name=fresh_name(out, "sizes"))
        self.matched.append(f"Resize+Conv -> {out.name}")
        attrs = {k: a.value for k, a in resize.attributes.items()}
        return op.Resize(low, *extra, **attrs)


class NhwcInputConv(Rule):
    """``Conv(Transpose(x, [0,3,1,2]))`` on NHWC x -> a one-channel Conv on x as [N,1,H,W*C].

    The kernel [Cout, C, kh, kw] becomes [Cout, 1, kh, kw*C] (channels innermost, as in memory)
    with strides [sh, sw*C] and pads scaled likewise: the same sums in another order. The
    layout transpose disappears and ORT reads the NHWC buffer directly.
    """

    option = "nhwc_input_conv"

    def pattern(self, op: Any, x: ir.Value, w: ir.Value) -> Any:
        return op.Conv(
            op.Transpose(x, _outputs=["moved"]), w, _allow_other_inputs=True, _outputs=["out"]
        )

    def check(
        self, context: Any, x: ir.Value, w: ir.Value, moved: ir.Value, out: ir.Value
    ) -> MatchResult:
        tr, conv = moved.producer(), out.producer()
        assert tr is not None and conv is not None
        weights = constant(w)
        if list(attr(tr, "perm", [])) != [0, 3, 1, 2]:
            return self.unrelated("the Transpose is not NHWC -> NCHW")
        if dims(x) is None:
            return self.decline("the input's shape is not static")
        if weights is None or weights.ndim != 4:
            return self.decline("the Conv's weights are not a constant 2-D kernel")
        if int(attr(conv, "group", 1)) != 1 or list(attr(conv, "dilations", [1, 1])) != [1, 1]:
            return self.decline("the Conv is grouped or dilated")
        if attr(conv, "auto_pad", "NOTSET") != "NOTSET":
            return self.decline("the Conv uses auto_pad")
        return MatchResult()

    def rewrite(self, op: Any, x: ir.Value, w: ir.Value, moved: ir.Value, out: ir.Value) -> Any:
        conv = out.producer()
        assert conv is not None
        weights = constant(w)
        assert weights is not None
        n, h, width, c = dims(x) or []
        cout, cin, kh, kw = weights.shape
        strides = list(attr(conv, "strides", [1, 1]))
        pads = list(attr(conv, "pads", [0, 0, 0, 0]))
        shape = op.initializer(
            ir.tensor(np.array([n, 1, h, width * c], np.int64)), name=fresh_name(x, "flat_shape")
        )
        flat_w = weights.transpose(0, 2, 3, 1).reshape(cout, 1, kh, kw * cin).astype(weights.dtype)
        kernel = op.initializer(ir.tensor(flat_w), name=fresh_name(w, "flat"))
        self.matched.append(f"Transpose+Conv -> {moved.name}")
        return op.Conv(
            op.Reshape(x, shape),
            kernel,
            *conv.inputs[2:],
            kernel_shape=[kh, kw * cin],
            strides=[strides[0], strides[1] * cin],
            pads=[pads[0], pads[1] * cin, pads[2], pads[3] * cin],
        )


class TransposeToReshape(Rule):
    """A Transpose that moves only size-1 axes keeps the element order: it is a Reshape."""

    option = "transpose_to_reshape"

    def pattern(self, op: Any, x: ir.Value) -> Any:
        return op.Transpose(x, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        shape, tr = dims(x), out.producer()
        assert tr is not None
        if shape is None:
            return self.decline("the input's shape is not static")
        perm = list(attr(tr, "perm", list(reversed(range(len(shape))))))
        moved = [p for p in perm if shape[p] != 1]
        if perm == sorted(perm):
            return self.unrelated("the Transpose is an identity")
        if moved != sorted(moved):
            return self.unrelated("the Transpose reorders axes of size > 1")
        return MatchResult()

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> Any:
        shape, tr = dims(x) or [], out.producer()
        assert tr is not None
        perm = list(attr(tr, "perm", list(reversed(range(len(shape))))))
        target = np.array([shape[p] for p in perm], np.int64)
        self.matched.append(f"Transpose -> {out.name}")
        return op.Reshape(x, op.initializer(ir.tensor(target), name=fresh_name(out, "shape")))
