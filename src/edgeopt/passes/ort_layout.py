"""ort_layout: exact rewrites that let ONNX Runtime keep more of a CNN in its blocked layout.

The rewrites themselves (what each does, why it is exact, what it measured) live in
`edgeopt.rewrites`, shared with the TVM backend; this module is the pass around them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import ClassVar

from pydantic import BaseModel

from edgeopt.artifact import ModelArtifact
from edgeopt.passes._util import op_counts, parse_pass_options, save_proto
from edgeopt.passes.base import PassContext, PassResult
from edgeopt.rewrites import OrtLayoutOptions, rewrite

__all__ = ["OrtLayoutOptions", "OrtLayoutPass", "rewrite"]

logger = logging.getLogger(__name__)


class OrtLayoutPass:
    """Exact graph rewrites that keep more of the model in ORT's blocked NCHWc layout."""

    name: ClassVar[str] = "ort_layout"
    requires: ClassVar[Iterable[str]] = ()
    options_type: ClassVar[type[BaseModel]] = OrtLayoutOptions

    def apply(self, model: ModelArtifact, ctx: PassContext) -> PassResult:
        """Rewrite ``model``; writes ``ort_layout.onnx`` into the work folder.

        Raises:
            ConfigError: Bad options.
        """
        opts = parse_pass_options(self.name, OrtLayoutOptions, ctx.options)
        proto = model.proto()
        before = op_counts(proto)
        out, facts = rewrite(proto, opts)
        total = sum(facts["applied"].values())
        if total == 0:
            reason = "no squeeze-excite Mul, Resize->1x1 Conv, NHWC input Conv or size-1 "
            reason += "Transpose found"
            near = [
                f"{why} (x{n})"
                for reasons in facts["declined"].values()
                for why, n in reasons.items()
            ]
            if near:
                reason += "; near misses: " + ", ".join(near)
            return PassResult.not_applicable(model, reason)
        after = op_counts(out)
        artifact = save_proto(out, ctx.workdir / "ort_layout.onnx")
        report = {**facts, "ops_before": before, "ops_after": after}
        logger.info("ort_layout: %s", facts["applied"])
        return PassResult(model=artifact, modified=True, report=report)
