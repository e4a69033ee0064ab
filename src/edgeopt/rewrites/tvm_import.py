"""Rules that make what ONNX Runtime runs acceptable to TVM's Relax ONNX importer."""

from __future__ import annotations

from typing import Any

import onnx_ir as ir
from onnxscript.rewriter import MatchResult

from edgeopt.rewrites._rule import Rule, constant

__all__ = ["ResizeSizesOnly"]


class ResizeSizesOnly(Rule):
    """A Resize given both ``scales`` and ``sizes``, its ``scales`` empty -> ``sizes`` alone.

    tf2onnx writes an empty ``scales`` tensor beside ``sizes``; ORT then uses ``sizes``, but the
    spec allows only one and TVM's importer refuses the node ("Only one of scales and sizes can
    be provided"). Dropping the empty input is exact: the output size is the same.
    """

    option = "resize_sizes_only"

    def pattern(
        self, op: Any, x: ir.Value, roi: ir.Value, scales: ir.Value, sizes: ir.Value
    ) -> Any:
        return op.Resize(x, roi, scales, sizes, _outputs=["out"])

    def check(
        self,
        context: Any,
        x: ir.Value,
        roi: ir.Value,
        scales: ir.Value,
        sizes: ir.Value,
        out: ir.Value,
    ) -> MatchResult:
        value = constant(scales)
        if value is None or value.size != 0:
            return self.unrelated("the Resize's scales are not an empty constant")
        return MatchResult()

    def rewrite(
        self, op: Any, x: ir.Value, roi: ir.Value, scales: ir.Value, sizes: ir.Value, out: ir.Value
    ) -> Any:
        resize = out.producer()
        assert resize is not None
        self.matched.append(f"Resize -> {out.name}")
        attrs = {k: a.value for k, a in resize.attributes.items()}
        return op.Resize(x, roi, None, sizes, **attrs)
