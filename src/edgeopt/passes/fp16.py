"""fp16: store float weights as float16, halving the model file.

Two modes. ``weights`` (default) stores every large float32 initializer as float16 and puts a
Cast back to float32 in front of its users: the file halves, the arithmetic stays fp32, and
ONNX Runtime folds the Casts into fp32 constants when it creates the session, so the speed is
that of fp32 and the error is only the rounding of the weights. ``full`` converts the whole
graph to float16 with ONNX Runtime's own converter (``onnxruntime.transformers.float16``,
inputs and outputs kept float32); it pays only where the runtime has fp16 kernels (GPUs, ARM
with fp16 arithmetic), and ORT on x86 CPUs lacks many of them: the pass says so.

The ``weights`` rewrite is a few lines on the graph and replaces no maintained library (the
converters available convert whole graphs, not storage only).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar, Literal

import numpy as np
import onnx
from onnx import helper, numpy_helper
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.artifact import ModelArtifact
from edgeopt.errors import BackendError
from edgeopt.passes._util import (
    drop_weight_inputs,
    op_counts,
    parse_pass_options,
    save_proto,
)
from edgeopt.passes.base import PassContext, PassResult

__all__ = ["Fp16Options", "Fp16Pass", "fp16_weights"]


class Fp16Options(BaseModel):
    """Options of the fp16 pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["weights", "full"] = Field(
        default="weights",
        description="weights: fp16 storage, fp32 compute; full: the whole graph in fp16.",
    )
    min_elements: int = Field(
        default=16, ge=1, description="Initializers smaller than this stay float32."
    )


def fp16_weights(model: onnx.ModelProto, min_elements: int = 16) -> tuple[onnx.ModelProto, int]:
    """Store float32 initializers of at least ``min_elements`` as float16 behind a Cast.

    Returns:
        The rewritten model and the number of initializers converted.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    casts = []
    converted = 0
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or int(np.prod(init.dims)) < min_elements:
            continue
        arr = numpy_helper.to_array(init)
        name = init.name
        init.CopyFrom(numpy_helper.from_array(arr.astype(np.float16), f"{name}__fp16"))
        casts.append(
            helper.make_node(
                "Cast", [f"{name}__fp16"], [name], to=onnx.TensorProto.FLOAT, name=f"{name}__cast"
            )
        )
        converted += 1
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return out, converted


class Fp16Pass:
    """float16 weights (storage only) or a full float16 graph."""

    name: ClassVar[str] = "fp16"
    requires: ClassVar[Iterable[str]] = ()
    options_type: ClassVar[type[BaseModel]] = Fp16Options

    def apply(self, model: ModelArtifact, ctx: PassContext) -> PassResult:
        """Convert ``model``; writes ``fp16.onnx`` into the work folder.

        Raises:
            ConfigError: Bad options. BackendError: the fp16 converter failed.
        """
        opts = parse_pass_options(self.name, Fp16Options, ctx.options)
        proto = model.proto()
        dropped = drop_weight_inputs(proto)  # else the converter's casts break SSA
        if opts.mode == "weights":
            out, converted = fp16_weights(proto, opts.min_elements)
            if converted == 0:
                return PassResult.not_applicable(model, "no float32 initializer to convert")
        else:
            try:
                from onnxruntime.transformers.float16 import convert_float_to_float16

                out = convert_float_to_float16(proto, keep_io_types=True)
            except Exception as e:
                raise BackendError(f"fp16: ORT's float16 converter failed: {e}") from e
            converted = sum(
                1 for t in out.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16
            )
        artifact = save_proto(out, ctx.workdir / "fp16.onnx")
        report = {
            "mode": opts.mode,
            "initializers_fp16": converted,
            "size_before": model.size_bytes,
            "size_after": artifact.size_bytes,
            "ops_after": op_counts(out),
            "normalized": (
                [f"{len(dropped)} weights listed among the graph inputs made initializers only"]
                if dropped
                else []
            ),
        }
        return PassResult(model=artifact, modified=True, report=report)
