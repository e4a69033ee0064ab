"""Rewrites that make the MediaPipe model's slowest operators cheap for TVM on CPU.

Profiling the tuned MediaPipe selfie model (10 min of MetaSchedule on a 2-core Sapphire Rapids,
per-kernel times through the Relax VM's instrument hook; 2.70 ms in all, ONNX Runtime 2.0 ms)
found about 1 ms in kernels whose cost tuning cannot touch, because it lies in TVM's operator
definitions rather than in their schedules:

- ``image.resize2d`` (bilinear, ``half_pixel``, exactly 2x): 0.63 ms for the three decoder
  upsamplings. Now a call to a hand-scheduled kernel (`edgeopt.backends.tvm_kernels`).
- ``nn.conv2d_transpose`` with stride equal to kernel, no padding, one group (the model's last
  layer, 16 -> 1 channels, 2x2 stride 2): TVM dilates the input with zeros and convolves
  densely; an earlier rewrite as a 1x1 conv plus depth-to-space still cost 0.2 ms. Now a
  hand-scheduled kernel too.
- ``sigmoid`` on the 256 x 256 mask: TVM calls ``expf`` per element (no vector math library),
  about 0.1 ms. Rewritten as ``(1 + tanh(x/2)) / 2`` with Relax's ``FastMathTransform``, whose
  ``fast_tanh`` is a rational approximation that vectorizes (error ~1e-7).

The backend also runs one ONNX-level rewrite first (``ort_layout``'s exact
``resize_conv_swap``: a 1x1 conv after an upsampling runs before it, at a quarter of the
pixels). Everything else is left as it is. Hand-written because TVM has no such rewrites; the
patterns are checked against ONNX Runtime by tests/backends/test_tvm_kernels.py and the backend
contract test.
"""

from __future__ import annotations

from typing import Any

import tvm  # type: ignore[import-untyped]
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator  # type: ignore[import-untyped]

from edgeopt.backends.tvm_kernels import conv_transpose_blocks, upsample_bilinear_2x

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
        if op == "relax.sigmoid":
            return self._sigmoid(call)
        return call

    def _kernel(self, func: Any, name: str, args: list[Any], shape: list[int]) -> Any:
        gv = self.builder_.add_func(func, name)
        return self.builder_.emit(relax.call_tir(gv, args, relax.TensorType(shape, "float32")))

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
        return self._kernel(upsample_bilinear_2x(*shape), "upsample_bilinear_2x", [x], out)

    def _conv_transpose(self, call: Any) -> Any:
        attrs = call.attrs
        x, w = call.args
        xs, ws = _static_shape(x), _static_shape(w)
        if (
            xs is None
            or ws is None
            or len(xs) != 4
            or str(getattr(x.ty, "dtype", "")) != "float32"
            or str(getattr(w.ty, "dtype", "")) != "float32"
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
        kernel = conv_transpose_blocks(n, cin, cout, h, wd, kh, kw)
        return self._kernel(kernel, "conv_transpose_blocks", [x, w], [n, cout, h * kh, wd * kw])

    def _sigmoid(self, call: Any) -> Any:
        # sigmoid(x) = (1 + tanh(x/2)) / 2; FastMathTransform then lowers tanh to a rational
        # approximation that vectorizes, where TVM's sigmoid calls expf per element.
        if str(getattr(call.ty, "dtype", "")) != "float32":
            return call
        self.rewritten += 1
        half = relax.const(0.5, "float32")
        tanh = relax.op.tanh(relax.op.multiply(call.args[0], half))
        return relax.op.add(relax.op.multiply(tanh, half), half)


def rewrite_for_cpu(mod: Any) -> tuple[Any, int]:
    """Rewrite 2x bilinear resizes and non-overlapping transposed convolutions in ``mod``.

    Args:
        mod: A Relax IRModule straight from the ONNX frontend.

    Returns:
        The rewritten module and the number of operators rewritten.
    """
    rewriter = _CpuRewriter(mod)
    new = rewriter.transform()
    new = tvm.transform.Sequential(
        [relax.transform.FastMathTransform(), relax.transform.DeadCodeElimination()]
    )(new)
    return new, int(rewriter.rewritten)
