"""Relax graph rewrites that make two of the MediaPipe model's operators cheap for TVM on CPU.

Profiling the tuned MediaPipe selfie model (MetaSchedule's per-kernel table, 55 kernels, 10 min
of tuning on this 2-core Zen 5) showed two kinds of kernel that tuning cannot fix, because their
cost is in TVM's operator definitions rather than in the schedule:

- ``image.resize2d`` (bilinear, ``half_pixel``, exactly 2x): TVM computes a float source
  coordinate, floors, clamps and gathers four values for every output element; the three
  decoder upsamplings took about 1.0 ms of the model's 3.9 ms. For a 2x ``half_pixel``
  upsampling the weights are constants: output ``2i`` is ``0.75*x[i] + 0.25*x[i-1]`` and
  ``2i+1`` is ``0.75*x[i] + 0.25*x[i+1]``, with the edge repeated (ONNX clamps the source
  coordinate). Written as slices, multiply-adds and an interleave per axis, it becomes one
  fused injective kernel without index arithmetic, and matches ``resize2d`` to float rounding.
- ``nn.conv2d_transpose`` with stride equal to kernel size, no padding and one group (the
  model's last layer, 16 -> 1 channels, 2x2 stride 2, about 0.5 ms): TVM dilates the input
  with zeros and runs a dense convolution over them. Such a transposed convolution touches
  each input pixel once per output block, so it is exactly a 1x1 convolution to
  ``Cout*kh*kw`` channels followed by a depth-to-space interleave (the weight is reordered
  once here, from the constant).

Run before TVM, ONNX-level rewrites help a little: ``ort_layout`` with only ``resize_conv_swap``
(the 1x1 conv after each upsampling moved in front of it, so the first two upsamplings process
24/16 channels instead of 128/24) made the tuned model 1.02-1.13x faster by p50 in two
interleaved runs (each model tuned 10 min; shared 2-core Zen 5), reproducible with
``benchmarks/backends_table.py --pre-pass ort_layout``. It does not reach ONNX Runtime: TVM
stays at 0.71-0.74x of ORT default on the original model. The last upsampling (16 channels,
64x64 -> 128x128; nothing to swap) still costs about 0.5 ms as one fused injective kernel that
MetaSchedule cannot reschedule; ``se_broadcast`` turns TVM's fused squeeze-excite multiplies
into separate nearest-``resize2d`` kernels (54 -> 58 tasks; not timed, that needs another
tuning run), so it is left off for TVM.

Anything else is left as it is. Hand-written because TVM has no such rewrite; the patterns are
checked against ONNX Runtime by the backend contract test (tests/backends/test_contract.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm  # type: ignore[import-untyped]
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator  # type: ignore[import-untyped]

__all__ = ["rewrite_for_cpu"]


def _static_shape(expr: Any) -> list[int] | None:
    # TVM 0.27 calls struct info "ty"; a static shape is a ShapeExpr of integer values.
    shape = getattr(getattr(expr, "ty", None), "shape", None)
    values = getattr(shape, "values", None)
    if values is None:
        return None
    try:
        return [int(d) for d in values]
    except TypeError:  # symbolic dimension
        return None


@mutator
class _CpuRewriter(PyExprMutator):  # type: ignore[misc]
    def __init__(self, mod: Any) -> None:
        super().__init__(mod)
        self.mod_ = mod
        self.rewritten = 0

    def transform(self) -> Any:
        for gv, func in self.mod_.functions_items():
            if isinstance(func, relax.Function):
                self.builder_.update_func(gv, self.visit_expr(func))
        return self.builder_.get()

    def visit_call_(self, call: Any) -> Any:
        call = self.visit_expr_post_order(call)
        op = getattr(call.op, "name", "")
        if op == "relax.image.resize2d":
            return self._resize(call)
        if op == "relax.nn.conv2d_transpose":
            return self._conv_transpose(call)
        return call

    def _emit(self, expr: Any) -> Any:
        return self.builder_.emit(expr)

    def _upsample_axis(self, x: Any, axis: int, shape: list[int]) -> tuple[Any, list[int]]:
        sl = relax.op.strided_slice
        length = shape[axis]
        prev = self._emit(
            relax.op.concat([sl(x, [axis], [0], [1]), sl(x, [axis], [0], [length - 1])], axis=axis)
        )
        nxt = self._emit(
            relax.op.concat(
                [sl(x, [axis], [1], [length]), sl(x, [axis], [length - 1], [length])], axis=axis
            )
        )
        main = self._emit(relax.op.multiply(x, relax.const(0.75, "float32")))
        even = self._emit(relax.op.add(main, relax.op.multiply(prev, relax.const(0.25, "float32"))))
        odd = self._emit(relax.op.add(main, relax.op.multiply(nxt, relax.const(0.25, "float32"))))
        pair = self._emit(
            relax.op.concat(
                [relax.op.expand_dims(even, axis + 1), relax.op.expand_dims(odd, axis + 1)],
                axis=axis + 1,
            )
        )
        merged = [*shape[:axis], length * 2, *shape[axis + 1 :]]
        return self._emit(relax.op.reshape(pair, merged)), merged

    def _resize(self, call: Any) -> Any:
        attrs = call.attrs
        x = call.args[0]
        shape = _static_shape(x)
        out = _static_shape(call)
        if (
            shape is None
            or out is None
            or len(shape) != 4
            or str(attrs.layout) != "NCHW"
            or str(attrs.method) != "linear"
            or str(attrs.coordinate_transformation_mode) != "half_pixel"
            or str(getattr(x.ty, "dtype", "")) != "float32"
            or out[2] != 2 * shape[2]
            or out[3] != 2 * shape[3]
            or min(shape[2], shape[3]) < 2
        ):
            return call
        self.rewritten += 1
        y, shape = self._upsample_axis(x, 2, shape)
        return self._upsample_axis(y, 3, shape)[0]

    def _conv_transpose(self, call: Any) -> Any:
        attrs = call.attrs
        x, w = call.args
        xs, ws = _static_shape(x), _static_shape(w)
        if (
            xs is None
            or ws is None
            or not isinstance(w, tvm.ir.expr.Constant)
            or str(attrs.data_layout) != "NCHW"
            or str(attrs.kernel_layout) != "IOHW"
            or str(attrs.out_layout) != "NCHW"
            or int(attrs.groups) != 1
            or [int(s) for s in attrs.strides] != ws[2:]
            or any(int(p) for p in attrs.padding)
            or any(int(p) for p in attrs.output_padding)
            or any(int(d) != 1 for d in attrs.dilation)
        ):
            return call
        self.rewritten += 1
        n, cin, h, wd = xs
        _, cout, kh, kw = ws
        weight = w.value.numpy()  # [Cin, Cout, kh, kw] -> [Cout*kh*kw, Cin, 1, 1]
        packed = np.ascontiguousarray(weight.transpose(1, 2, 3, 0).reshape(cout * kh * kw, cin))
        kernel = relax.const(packed.reshape(cout * kh * kw, cin, 1, 1))
        y = self._emit(relax.op.nn.conv2d(x, kernel))
        y = self._emit(relax.op.reshape(y, [n, cout, kh, kw, h, wd]))
        y = self._emit(relax.op.permute_dims(y, [0, 1, 4, 2, 5, 3]))
        return self._emit(relax.op.reshape(y, [n, cout, h * kh, wd * kw]))


def rewrite_for_cpu(mod: Any) -> tuple[Any, int]:
    """Rewrite 2x bilinear resizes and non-overlapping transposed convolutions in ``mod``.

    Args:
        mod: A Relax IRModule straight from the ONNX frontend.

    Returns:
        The rewritten module and the number of operators rewritten.
    """
    rewriter = _CpuRewriter(mod)
    new = rewriter.transform()
    return tvm.relax.transform.DeadCodeElimination()(new), int(rewriter.rewritten)
