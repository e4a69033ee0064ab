"""prune_unstructured: magnitude pruning of weight tensors (zero the smallest weights).

Per-layer (each weight tensor loses the same fraction) or global (one magnitude threshold over
all prunable weights, so layers with many small weights lose more). Weights of Conv,
ConvTranspose, Gemm and MatMul are pruned; biases and tensors smaller than ``min_elements``
(the few weights of a squeeze-excite or a 3x3 depthwise filter carry the most per weight) are
left alone. Zeros do not make dense CPU kernels faster, nor the ONNX file smaller; the pass
pays only with a sparse runtime or compression, and is mainly the baseline that structured
channel pruning (``prune_structured``) is measured against. It is a few lines of numpy: the
maintained pruning libraries (torch.nn.utils.prune, NNCF) work on training graphs, not ONNX.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Literal

import numpy as np
import onnx
from onnx import numpy_helper
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.artifact import ModelArtifact
from edgeopt.passes._util import parse_pass_options, save_proto
from edgeopt.passes.base import PassContext, PassResult

__all__ = ["PruneOptions", "UnstructuredPrunePass", "magnitude_prune"]

_WEIGHT_INPUT = {"Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1}


class PruneOptions(BaseModel):
    """Options of the unstructured prune pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sparsity: float = Field(default=0.3, ge=0.0, lt=1.0, description="Fraction of weights zeroed.")
    scope: Literal["layer", "global"] = Field(
        default="layer", description="layer: same sparsity per tensor; global: one threshold."
    )
    min_elements: int = Field(
        default=256, ge=1, description="Weight tensors smaller than this are not pruned."
    )


def _prunable(model: onnx.ModelProto, min_elements: int) -> list[onnx.TensorProto]:
    inits = {t.name: t for t in model.graph.initializer}
    names: list[str] = []
    for node in model.graph.node:
        idx = _WEIGHT_INPUT.get(node.op_type)
        if idx is None or len(node.input) <= idx:
            continue
        name = node.input[idx]
        t = inits.get(name)
        if (
            t is not None
            and t.data_type == onnx.TensorProto.FLOAT
            and name not in names
            and int(np.prod(t.dims)) >= min_elements
        ):
            names.append(name)
    return [inits[n] for n in names]


def magnitude_prune(
    model: onnx.ModelProto, sparsity: float, scope: str = "layer", min_elements: int = 256
) -> tuple[onnx.ModelProto, dict[str, float]]:
    """Zero the smallest-magnitude weights; returns the new model and each tensor's sparsity."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    tensors = _prunable(out, min_elements)
    arrays = {t.name: numpy_helper.to_array(t).copy() for t in tensors}
    threshold = None
    if scope == "global" and arrays:
        allw = np.concatenate([np.abs(a).ravel() for a in arrays.values()])
        k = int(sparsity * allw.size)
        threshold = float(np.partition(allw, k - 1)[k - 1]) if k > 0 else -1.0
    result = {}
    for t in tensors:
        a = arrays[t.name]
        flat = np.abs(a).ravel()
        if threshold is None:
            k = int(sparsity * flat.size)
            if k == 0:
                result[t.name] = float((a == 0).mean())
                continue
            order = np.argsort(flat, kind="stable")[:k]
            mask = np.ones(flat.size, bool)
            mask[order] = False
            a = a * mask.reshape(a.shape)
        else:
            a = np.where(np.abs(a) <= threshold, 0.0, a).astype(a.dtype)
        t.CopyFrom(numpy_helper.from_array(a.astype(np.float32), t.name))
        result[t.name] = float((a == 0).mean())
    return out, result


class UnstructuredPrunePass:
    """Unstructured magnitude pruning (per layer or global)."""

    name: ClassVar[str] = "prune_unstructured"
    requires: ClassVar[Iterable[str]] = ()
    options_type: ClassVar[type[BaseModel]] = PruneOptions

    def apply(self, model: ModelArtifact, ctx: PassContext) -> PassResult:
        """Prune ``model``; writes ``pruned.onnx`` into the work folder.

        Raises:
            ConfigError: Bad options.
        """
        opts = parse_pass_options(self.name, PruneOptions, ctx.options)
        proto = model.proto()
        out, per_tensor = magnitude_prune(proto, opts.sparsity, opts.scope, opts.min_elements)
        if not per_tensor:
            return PassResult.not_applicable(
                model, f"no Conv/Gemm/MatMul weight tensor with >= {opts.min_elements} elements"
            )
        sizes = {
            t.name: int(np.prod(t.dims)) for t in out.graph.initializer if t.name in per_tensor
        }
        total = sum(sizes.values())
        zeros = sum(per_tensor[n] * sizes[n] for n in per_tensor)
        report: dict[str, Any] = {
            "options": opts.model_dump(),
            "tensors_pruned": len(per_tensor),
            "sparsity": zeros / total if total else 0.0,
            "per_tensor": {n: round(v, 4) for n, v in per_tensor.items()},
        }
        artifact = save_proto(out, ctx.workdir / "pruned.onnx")
        return PassResult(model=artifact, modified=True, report=report)
