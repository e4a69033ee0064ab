"""quantize: int8 post-training quantization on ``onnxruntime.quantization``, with accuracy control.

Dynamic mode (weights int8, activations quantized at run time: ConvInteger / MatMulInteger) and
static mode (QDQ: QuantizeLinear/DequantizeLinear pairs whose scales come from calibration on
real frames), per-tensor or per-channel weights, MinMax / Entropy / Percentile calibration,
``reduce_range`` (7-bit weights, for CPUs without VNNI whose VPMADDUBSW saturates 16-bit sums),
U8S8 / U8U8 / S8S8 type pairs, and op-type or node include/exclude lists. All of it is ORT's
own quantizer; this module only maps typed options onto it and feeds it calibration data.
``format: qoperator`` writes QLinearConv-style operators instead of QDQ pairs.

Defaults come from measurements on MediaPipe selfie (16 calibration frames, IoU vs fp32 on 24
held-out frames): percentile calibration (99.99) beats MinMax clearly (Conv-only int8: IoU
0.980 mean / 0.94 worst vs 0.948 / 0.44), because a few outlier activations stretch MinMax's
ranges over the 256 levels. Quantizing the element-wise ops too (squeeze-excite Mul, Add,
Sigmoid) costs fidelity (0.958 / 0.82) for little speed. On this AVX-512 VNNI machine int8 is
still slower than fp32 on ORT for this 2 ms model: ORT runs its fp32 convs in the blocked
NCHWc layout with fused activations, int8 convs in NHWC behind Q/DQ and transposes, and the
int8 depthwise and 3-channel stem convs are slower than their fp32 versions (see
``benchmarks/passes_table.py``'s op profile).

Accuracy-aware mode (``accuracy:``, static only): quantize everything, then rank each quantized
node by how much the fidelity bound's metric recovers when that node alone goes back to fp32
(leave-one-out from the fully quantized model, as NNCF's accuracy-aware PTQ ranks its groups),
and keep the top-ranked nodes in fp32, searching the smallest such set (doubling, then
bisection) that meets the bound on the calibration frames. The pass reports which nodes stayed
fp32, every node's score, and the fidelity at each step. The pipeline then reports fidelity on
a held-out evaluation set, so the bound is not graded on the data it was fitted to.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import onnx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeopt.artifact import ModelArtifact
from edgeopt.errors import BackendError, ConfigError
from edgeopt.interface import ModelInterface
from edgeopt.metrics import FidelityMetrics, compare_outputs, parse_bound
from edgeopt.passes._util import (
    drop_weight_inputs,
    op_counts,
    parse_pass_options,
    save_proto,
    unique_node_names,
    upgrade_opset,
)
from edgeopt.passes.base import PassContext, PassResult
from edgeopt.registry import run_outputs

__all__ = [
    "AccuracyBound",
    "QuantizeOptions",
    "QuantizePass",
    "quantize_file",
    "quantized_nodes",
]

logger = logging.getLogger(__name__)

_QDQ = {"QuantizeLinear", "DequantizeLinear"}


class AccuracyBound(BaseModel):
    """A fidelity bound the quantized model must meet against the fp32 model: written as on
    the command line (``accuracy: iou>=0.98``) or as fields (``{metric: iou, threshold:
    0.98}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            metric, threshold = parse_bound(value)
            return {"metric": metric, "threshold": threshold}
        return value

    metric: Literal["iou", "iou_min", "cosine", "boundary_f", "max_abs", "mean_abs"] = Field(
        default="iou", description="Fidelity metric compared with the fp32 model's outputs."
    )
    threshold: float = Field(
        default=0.98,
        description="Bound: the metric must be >= this (<= for max_abs and mean_abs).",
    )
    max_fp32_nodes: int = Field(
        default=32, ge=0, description="Most nodes kept in fp32 before giving up."
    )
    candidate_op_types: list[str] | None = Field(
        default=None,
        description="Only rank nodes of these op types for fp32 fallback (default: every "
        "quantized node; e.g. [Conv] makes the search faster on big graphs).",
    )


class QuantizeOptions(BaseModel):
    """Options of the quantize pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["dynamic", "static"] = Field(
        default="static", description="dynamic: weights only, activations at run time; static: QDQ."
    )
    per_channel: bool = Field(default=True, description="One weight scale per output channel.")
    format: Literal["qdq", "qoperator"] = Field(
        default="qdq",
        description="Static mode's format: QDQ pairs, or QOperator (QLinearConv, ...) nodes.",
    )
    calibration: Literal["minmax", "entropy", "percentile"] = Field(
        default="percentile", description="How static mode picks activation ranges."
    )
    percentile: float = Field(
        default=99.99, gt=50, le=100, description="Percentile kept by percentile calibration."
    )
    reduce_range: bool = Field(
        default=False, description="7-bit weights (avoids VPMADDUBSW saturation without VNNI)."
    )
    types: Literal["U8S8", "U8U8", "S8S8"] = Field(
        default="U8S8", description="Activation/weight integer types: U8S8, U8U8 or S8S8."
    )
    op_types: list[str] | None = Field(
        default=None, description="Only quantize these op types (default: all ORT supports)."
    )
    exclude_op_types: list[str] = Field(default_factory=list, description="Op types left in fp32.")
    exclude_nodes: list[str] = Field(default_factory=list, description="Node names left in fp32.")
    preprocess: bool = Field(
        default=True, description="Run ORT's quant_pre_process (shape inference, fusions) first."
    )
    accuracy: AccuracyBound | None = Field(
        default=None, description="Accuracy-aware mode: keep sensitive nodes fp32 until this holds."
    )


def _types(name: str) -> tuple[Any, Any]:
    from onnxruntime.quantization import QuantType

    act = QuantType.QUInt8 if name.startswith("U8") else QuantType.QInt8
    weight = QuantType.QInt8 if name.endswith("S8") else QuantType.QUInt8
    return act, weight


def _method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[name]


def _reader(feeds: Sequence[Mapping[str, np.ndarray]]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._it = iter([dict(f) for f in feeds])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

        def __len__(self) -> int:
            return len(feeds)

    return _Reader()


def quantize_file(
    src: Path,
    dst: Path,
    opts: QuantizeOptions,
    calibration: Sequence[Mapping[str, np.ndarray]] = (),
    exclude: Iterable[str] = (),
    cache: Path | None = None,
) -> None:
    """Quantize the model at ``src`` into ``dst`` with ORT's quantizer.

    Args:
        src: A float model (already pre-processed if wanted).
        dst: Where the quantized model goes.
        opts: The pass options.
        calibration: Feeds for static calibration.
        exclude: Node names kept in fp32, besides ``opts.exclude_nodes`` and excluded op types.
        cache: A calibration cache file (reused if it exists, so repeated runs skip calibration).

    Raises:
        BackendError: ORT's quantizer failed.
    """
    from onnxruntime.quantization import QuantFormat, quantize_dynamic, quantize_static

    model = onnx.load(str(src))
    excluded = set(opts.exclude_nodes) | set(exclude)
    excluded |= {n.name for n in model.graph.node if n.op_type in set(opts.exclude_op_types)}
    act, weight = _types(opts.types)
    try:
        if opts.mode == "dynamic":
            quantize_dynamic(
                str(src),
                str(dst),
                op_types_to_quantize=opts.op_types,
                per_channel=opts.per_channel,
                reduce_range=opts.reduce_range,
                weight_type=weight,
                nodes_to_exclude=sorted(excluded),
            )
            return
        quantize_static(
            str(src),
            str(dst),
            calibration_data_reader=_reader(calibration) if calibration else None,
            quant_format=QuantFormat.QDQ if opts.format == "qdq" else QuantFormat.QOperator,
            op_types_to_quantize=opts.op_types,
            per_channel=opts.per_channel,
            reduce_range=opts.reduce_range,
            activation_type=act,
            weight_type=weight,
            nodes_to_exclude=sorted(excluded),
            calibrate_method=_method(opts.calibration),
            extra_options={"CalibPercentile": opts.percentile},
            calibration_cache_path=cache,
        )
    except Exception as e:  # ORT's quantizer raises bare Exceptions and ValueErrors
        raise BackendError(
            f"quantize: onnxruntime's quantizer failed on {src}: {e}; try preprocess: false, "
            "or exclude the failing op type with exclude_op_types"
        ) from e


def quantized_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the non-Q/DQ nodes whose every input is a DequantizeLinear output.

    Those are the nodes ORT runs as integer node units (QDQ), e.g. a Conv whose activation,
    weight and bias all come dequantized; a node reading one quantized tensor beside a float
    one is not counted.
    """
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [
        n.name
        for n in model.graph.node
        if n.op_type not in _QDQ and all(i in dq_out for i in n.input if i) and any(n.input)
    ]


class _Evaluator:
    """Quantize with a given fp32 set and measure it on the calibration frames."""

    def __init__(
        self,
        src: Path,
        opts: QuantizeOptions,
        feeds: Sequence[Any],
        tmp: Path,
        interface: ModelInterface | None,
    ) -> None:
        self.src, self.opts, self.feeds, self.tmp = src, opts, feeds, tmp
        self.cache = tmp / "calibration.json"
        self.output = interface.output_name if interface is not None else None
        self.to_mask = interface.person_probability if interface and interface.has_mask else None
        self.reference = run_outputs(src, feeds, output=self.output)
        self.calls = 0

    def __call__(self, fp32: Iterable[str]) -> tuple[Path, FidelityMetrics]:
        self.calls += 1
        dst = self.tmp / f"q{self.calls}.onnx"
        quantize_file(self.src, dst, self.opts, self.feeds, exclude=fp32, cache=self.cache)
        got = run_outputs(dst, self.feeds, output=self.output)
        return dst, compare_outputs(self.reference, got, self.to_mask)


def _accuracy_aware(
    src: Path,
    opts: QuantizeOptions,
    bound: AccuracyBound,
    feeds: Sequence[Any],
    tmp: Path,
    interface: ModelInterface | None = None,
) -> tuple[Path, dict[str, Any]]:
    evaluate = _Evaluator(src, opts, feeds, tmp, interface)
    full_path, full = evaluate(())
    steps: list[dict[str, Any]] = [{"fp32_nodes": 0, bound.metric: full.value(bound.metric)}]
    report: dict[str, Any] = {"bound": bound.model_dump(), "full_int8": full.to_dict()}
    if full.meets(bound.metric, bound.threshold):
        return full_path, report | {"fp32_nodes": [], "met": True, "steps": steps}
    candidates = quantized_nodes(onnx.load(str(full_path)))
    allowed = bound.candidate_op_types or opts.op_types
    if allowed is not None:
        types = {n.name: n.op_type for n in onnx.load(str(src)).graph.node}
        candidates = [c for c in candidates if types.get(c) in set(allowed)]
    base = full.value(bound.metric)
    sign = -1.0 if bound.metric in {"max_abs", "mean_abs"} else 1.0
    scores: dict[str, float] = {}
    for name in candidates:
        _, m = evaluate([name])
        scores[name] = sign * (m.value(bound.metric) - base)
    ranked = sorted(candidates, key=lambda n: scores[n], reverse=True)
    limit = min(bound.max_fp32_nodes, len(ranked))
    results: dict[int, tuple[Path, FidelityMetrics]] = {0: (full_path, full)}

    def trial(k: int) -> bool:
        if k not in results:
            results[k] = evaluate(ranked[:k])
            steps.append({"fp32_nodes": k, bound.metric: results[k][1].value(bound.metric)})
        return results[k][1].meets(bound.metric, bound.threshold)

    lo, hi, k = 0, None, 1
    while k <= limit:  # doubling until the bound holds, then bisection in (lo, hi]
        if trial(k):
            hi = k
            break
        lo, k = k, k * 2
    if hi is None and limit > lo and trial(limit):
        hi = limit
    if hi is not None:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if trial(mid):
                hi = mid
            else:
                lo = mid
    met = hi is not None
    chosen = (
        hi
        if hi is not None
        else max(results, key=lambda i: sign * results[i][1].value(bound.metric))
    )
    report |= {
        "met": met,
        "fp32_nodes": ranked[:chosen],
        "scores": {n: round(scores[n], 6) for n in ranked},
        "steps": sorted(steps, key=lambda s: int(s["fp32_nodes"])),
        "quantizations": evaluate.calls,
        "calibration_fidelity": results[chosen][1].to_dict(),
    }
    if not met:
        logger.warning(
            "quantize: bound %s >= %s not met with %d fp32 nodes; keeping the best found",
            bound.metric,
            bound.threshold,
            limit,
        )
    return results[chosen][0], report


class QuantizePass:
    """int8 quantization (dynamic or static QDQ) with an optional fidelity bound."""

    name: ClassVar[str] = "quantize"
    requires: ClassVar[Iterable[str]] = ("calibration",)
    options_type: ClassVar[type[BaseModel]] = QuantizeOptions

    def apply(self, model: ModelArtifact, ctx: PassContext) -> PassResult:
        """Quantize ``model``; writes ``quantized.onnx`` into the work folder.

        Raises:
            ConfigError: Bad options, or static mode without calibration feeds.
            BackendError: ORT's quantizer failed.
        """
        opts = parse_pass_options(self.name, QuantizeOptions, ctx.options)
        proto = model.proto()
        if any(
            n.op_type in _QDQ or n.op_type.endswith("Integer") or n.op_type.startswith("QLinear")
            for n in proto.graph.node
        ):
            return PassResult.not_applicable(model, "the model is already quantized")
        if opts.mode == "static" and not ctx.calibration:
            raise ConfigError(
                "quantize: static mode needs calibration feeds; give the pipeline a calibration "
                "set, or use mode: dynamic"
            )
        if opts.accuracy is not None and (opts.mode != "static" or opts.format != "qdq"):
            raise ConfigError(
                "quantize: accuracy-aware mode (accuracy:) needs mode: static and format: qdq"
            )
        notes = []
        if opts.format == "qdq" and opts.mode == "static":
            # QDQ with per-axis scales needs DequantizeLinear's axis attribute (opset 13).
            proto, note = upgrade_opset(proto, 13, "int8 static QDQ")
            notes.append(note)
        if unique_node_names(proto):
            notes.append("unnamed or duplicate-named nodes were given unique names")
        if drop_weight_inputs(proto):
            notes.append("weights listed among the graph inputs were made initializers only")
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=ctx.workdir, prefix=".quantize-") as tmp_name:
            tmp = Path(tmp_name)
            src = tmp / "float.onnx"
            onnx.save(proto, str(src))
            if opts.preprocess:
                from onnxruntime.quantization.shape_inference import quant_pre_process

                try:
                    quant_pre_process(str(src), str(tmp / "pre.onnx"))
                    src = tmp / "pre.onnx"
                except Exception as e:  # a failed pre-process is not fatal: quantize as is
                    logger.warning("quantize: quant_pre_process failed (%s); quantizing as is", e)
            report: dict[str, Any] = {
                "options": opts.model_dump(exclude={"accuracy"}),
                "normalized": [n for n in notes if n],
            }
            if opts.accuracy is not None:
                out, acc = _accuracy_aware(
                    src, opts, opts.accuracy, ctx.calibration, tmp, ctx.interface
                )
                report["accuracy"] = acc
            else:
                out = tmp / "q.onnx"
                quantize_file(src, out, opts, ctx.calibration)
            result = onnx.load(str(out))
        artifact = save_proto(result, ctx.workdir / "quantized.onnx")
        ops = op_counts(result)
        report |= {
            "quantized_nodes": len(quantized_nodes(result)),
            "qdq_nodes": sum(v for k, v in ops.items() if k in _QDQ),
            "integer_ops": {k: v for k, v in ops.items() if "Integer" in k or "QLinear" in k},
            "size_before": model.size_bytes,
            "size_after": artifact.size_bytes,
        }
        return PassResult(model=artifact, modified=True, report=report)
