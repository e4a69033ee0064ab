"""simplify: constant folding, dead-node and identity removal, Conv+BatchNorm/affine fusion.

Built on onnxscript's optimizer (on top of onnx-ir), chosen over onnxslim and onnxsim because
it is maintained by the ONNX / PyTorch exporter team, ships in the same venv as onnx-ir (no
native build, unlike onnxsim's C++ extension that lags new Python and onnx releases), and its
rewrite rules are small, documented pattern classes we can add to (here: Conv -> scalar Mul -> Add
fusion and HardSigmoid*x -> HardSwish on top of its default set, which already fuses
BatchNormalization into Conv/ConvTranspose/Gemm, folds constants, removes identities, no-op
casts/expands/transposes and unused nodes, and runs ONNX shape inference).

Conv+activation fusion is deliberately left to the backend: standard ONNX has no fused
Conv+activation operator (ONNX Runtime fuses Conv+Relu/HardSigmoid/... into its own
``com.microsoft:FusedConv`` when it creates a session), so writing it into the file would tie
the model to one runtime. The pass reports ops and parameters before and after.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.artifact import ModelArtifact
from edgeopt.errors import BackendError
from edgeopt.passes._util import op_counts, param_count, parse_pass_options, save_proto
from edgeopt.passes.base import PassContext, PassResult

__all__ = ["SimplifyOptions", "SimplifyPass"]

logger = logging.getLogger(__name__)


class SimplifyOptions(BaseModel):
    """Options of the simplify pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    iterations: int = Field(
        default=2, ge=1, le=10, description="Rounds of folding + rewriting (stops early if stable)."
    )
    fuse_affine: bool = Field(
        default=True,
        description="Fold Conv -> scalar Mul -> scalar Add into the Conv's weights and bias.",
    )
    fuse_hardswish: bool = Field(
        default=True, description="Rewrite x * HardSigmoid(x) (and its Clip form) as HardSwish."
    )


class SimplifyPass:
    """Graph simplification with onnxscript's optimizer plus two extra fusion rules."""

    name: ClassVar[str] = "simplify"
    requires: ClassVar[Iterable[str]] = ()
    options_type: ClassVar[type[BaseModel]] = SimplifyOptions

    def apply(self, model: ModelArtifact, ctx: PassContext) -> PassResult:
        """Simplify ``model``; writes ``simplified.onnx`` into the work folder.

        Raises:
            ConfigError: Bad options. BackendError: the optimizer failed on this model.
        """
        opts = parse_pass_options(self.name, SimplifyOptions, ctx.options)
        import onnxscript.optimizer
        import onnxscript.rewriter
        from onnxscript.rewriter.rules import common as rules

        proto = model.proto()
        before_ops, before_params = op_counts(proto), param_count(proto)
        extra: list[Any] = []
        if opts.fuse_affine:
            extra += [rules.conv_affine_fusion_rule]
        opset = next((i.version for i in proto.opset_import if i.domain in ("", "ai.onnx")), 0)
        notes = []
        if opts.fuse_hardswish and opset >= 14:
            extra += list(rules.fuse_hardswish_rules().rules)
        elif opts.fuse_hardswish:  # HardSwish is an opset-14 op (PP-OCR's classifier: 11)
            notes.append(f"HardSwish fusion skipped: the model's opset {opset} is below 14")
        try:
            out = onnxscript.optimizer.optimize(proto, num_iterations=opts.iterations)
            if extra:
                out = onnxscript.rewriter.rewrite(out, pattern_rewrite_rules=extra)
                out = onnxscript.optimizer.optimize(out, num_iterations=1)
        except Exception as e:  # the optimizer raises assorted untyped errors
            raise BackendError(
                f"simplify: onnxscript's optimizer failed on {model.path}: {e}; "
                "run the recipe without the simplify pass"
            ) from e
        after_ops = op_counts(out)
        artifact = save_proto(out, ctx.workdir / "simplified.onnx")
        report = {
            "nodes_before": sum(before_ops.values()),
            "nodes_after": sum(after_ops.values()),
            "ops_before": before_ops,
            "ops_after": after_ops,
            "params_before": before_params,
            "params_after": param_count(out),
            **({"notes": notes} if notes else {}),
        }
        modified = before_ops != after_ops or report["params_before"] != report["params_after"]
        logger.info("simplify: %d -> %d nodes", report["nodes_before"], report["nodes_after"])
        return PassResult(model=artifact, modified=modified, report=report)
