"""quantize_nncf: int8 post-training quantization with NNCF's ONNX backend (QDQ in, QDQ out).

NNCF (OpenVINO's compression framework) quantizes an ``onnx.ModelProto`` directly: it matches
its CPU hardware configuration's patterns on the graph (Conv / MatMul / Gemm and what fuses
with them), inserts a QuantizeLinear/DequantizeLinear pair on every activation that enters such
a pattern, collects MinMax statistics by running the model with ONNX Runtime on the
calibration feeds, and, with ``fast_bias_correction``, shifts each quantized layer's bias by
the mean error quantization put on its output. Weights are quantized symmetric per output
channel and folded into int8 initializers behind a DequantizeLinear; activations are 8-bit
per tensor (per channel in front of a depthwise conv): u8 where they are never negative, i8
with zero point 0 where they are (the ``performance`` preset). ``mixed`` gives the latter a
zero point, which fits their range better but which OpenVINO's CPU plugin runs in f32 (on the
test's tiny MobileNet block, 3 of 5 convs int8 instead of 5 of 5), so it is not the default.
Squeeze-excite branches stay float (NNCF's CPU patterns leave them out). Each Q/DQ pair sits
where OpenVINO's low-precision transformations expect it, so OpenVINO compiles the result to
int8 kernels (VNNI / AMX on CPUs that have them); ONNX Runtime runs the same file as QDQ node
units. Placement is what separates this pass from ``quantize`` (ORT's quantizer): that one
places Q/DQ for ORT's kernels, this one for OpenVINO's.

The pass is not applicable (a value, not an error) when nncf is not installed (with the install
hint), when the model is already quantized, or when it has no float Conv / ConvTranspose /
MatMul / Gemm left to quantize after ``ignored_types`` / ``ignored_names``; NNCF placing no
quantizer at all is reported the same way. Any NNCF failure becomes one ``BackendError`` line,
mapped in one place (`_mapped_errors`, after httpx's ``map_exceptions``). NNCF writes its log and
its rich progress bars to stdout; here its log goes through ``logging`` (logger ``nncf``) and
the progress bars to a debug record, so the library never prints.

``fast_bias_correction: false`` (NNCF's full BiasCorrection) fails inside NNCF 3.4's ONNX
backend on MediaPipe selfie (KeyError on a node name); it surfaces as that BackendError.

``import nncf`` takes about 2.6 s and imports torch and openvino when they are installed, so
it happens inside ``apply`` only: listing passes or running other ones never pays for it.

Measurements (2-core Intel Xeon, Sapphire Rapids, AVX-512 VNNI + AMX, 2026-12-08; nncf 3.4.0,
OpenVINO 2026.4.1, ONNX Runtime 1.32.0; 2 threads; ``edgeopt.compare`` interleaved, 28 built-in
calibration photographs; the machine was shared, load 5-7, so only ratios are worth quoting):
int8 pays on OpenVINO where compute dominates. A YOLO-like SiLU conv net at 1x3x320x320
(2.1 GMACs, random weights, 18 convs int8): OpenVINO int8 2.6-2.9x faster than OpenVINO f32
and 2.9-3.9x faster than ONNX Runtime fp32, about as fast as OpenVINO bf16 (AMX runs both);
output cosine 0.983 to fp32. MediaPipe selfie 256x256 (43 of 55 convs int8): 1.2-1.3x over
OpenVINO f32, no faster than bf16; mask IoU 0.950 mean / 0.61 worst on 24 held-out frames
(``mixed``: 0.963 / 0.71), short of a 0.98 bound, where ``quantize``'s percentile calibration
does better on ONNX Runtime. Models under a millisecond (the tests' 64x64 ones) gain nothing.
ONNX Runtime runs these QDQ files 1.5-2x slower than its own fp32: Q/DQ placed for OpenVINO.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Literal

import onnx
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.artifact import ModelArtifact
from edgeopt.errors import BackendError, ConfigError, EdgeoptError
from edgeopt.passes._util import (
    drop_weight_inputs,
    op_counts,
    parse_pass_options,
    save_proto,
    unique_node_names,
    upgrade_opset,
)
from edgeopt.passes.base import PassContext, PassResult

__all__ = [
    "INSTALL_HINT",
    "WEIGHTED_OPS",
    "QuantizeNncfOptions",
    "QuantizeNncfPass",
    "nncf_available",
    "quantized_ops",
]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'edgeopt[openvino]' (it brings nncf)"
"""How to get nncf, the library this pass runs."""

WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
"""The op types whose int8 kernels make quantization pay; a model without one is skipped."""

_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})
_INT8_TRANSPARENT = frozenset(
    {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "MaxPool", "Slice"}
)
"""Ops that carry a per-tensor int8 value through unchanged (data input first)."""
_FLOAT = onnx.TensorProto.FLOAT


class QuantizeNncfOptions(BaseModel):
    """Options of the quantize_nncf pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preset: Literal["performance", "mixed"] = Field(
        default="performance",
        description="performance: symmetric int8 activations and weights (all int8 kernels on "
        "OpenVINO's CPU plugin); mixed: asymmetric activations, which fits ranges better but "
        "which OpenVINO's CPU plugin runs in f32 where they go negative.",
    )
    target_device: Literal["CPU", "ANY", "GPU", "NPU"] = Field(
        default="CPU",
        description="The hardware whose int8 rules NNCF follows (which ops and patterns it "
        "quantizes); edgeopt's backends run on CPUs.",
    )
    subset_size: int = Field(
        default=300,
        ge=1,
        description="Most calibration feeds used for statistics (all of them when fewer).",
    )
    fast_bias_correction: bool = Field(
        default=True,
        description="Shift each quantized layer's bias by the mean error quantization adds to "
        "its output (one extra pass over the subset per layer).",
    )
    model_type: Literal["transformer"] | None = Field(
        default=None,
        description="transformer: NNCF's transformer patterns (keeps LayerNorm, Softmax, "
        "attention additions in float); None: convolutional / generic models.",
    )
    ignored_types: list[str] = Field(
        default_factory=list,
        description="Op types NNCF leaves in float (e.g. [ConvTranspose]); ones the model lacks "
        "are ignored.",
    )
    ignored_names: list[str] = Field(
        default_factory=list,
        description="Node names NNCF leaves in float; ones the model lacks are ignored.",
    )


def nncf_available() -> bool:
    """True when the nncf package is installed (checked without importing it)."""
    return importlib.util.find_spec("nncf") is not None


def quantized_ops(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """The Conv / ConvTranspose / MatMul / Gemm nodes whose data and weight inputs both come out
    of a DequantizeLinear, directly or through ops that move int8 values unchanged (Transpose,
    Reshape, Flatten, MaxPool, ...: NNCF puts the Q/DQ pair before those, and OpenVINO and ONNX
    Runtime both carry the int8 tensor through them). Those run as int8 kernels; a float bias
    beside them is fine (backends quantize it to int32 themselves)."""
    producer = {o: n for n in model.graph.node for o in n.output}

    def dequantized(name: str) -> bool:
        for _ in range(len(model.graph.node)):
            node = producer.get(name)
            if node is None or not node.input:
                return False
            if node.op_type == "DequantizeLinear":
                return True
            if node.op_type not in _INT8_TRANSPARENT:
                return False
            name = node.input[0]
        return False

    return [
        n
        for n in model.graph.node
        if n.op_type in WEIGHTED_OPS and len(n.input) >= 2 and all(map(dequantized, n.input[:2]))
    ]


def _candidates(model: onnx.ModelProto, opts: QuantizeNncfOptions) -> list[onnx.NodeProto]:
    """Weighted nodes left to quantize: not ignored, and no non-float initializer input."""
    dtypes = {t.name: t.data_type for t in model.graph.initializer}
    ignored_types, ignored_names = set(opts.ignored_types), set(opts.ignored_names)
    return [
        n
        for n in model.graph.node
        if n.op_type in WEIGHTED_OPS
        and n.op_type not in ignored_types
        and n.name not in ignored_names
        and all(dtypes.get(i, _FLOAT) == _FLOAT for i in n.input[:2])
    ]


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= 240 else line[:237] + "..."


_WHAT = {
    "ValidationError": "NNCF rejected the model or the options",
    "UnsupportedModelError": "NNCF does not support this model",
    "UnsupportedBackendError": "NNCF found no backend for this model",
    "InternalError": "NNCF failed internally",
}
"""What each NNCF exception (by class name: nncf is imported late) means, for the message."""


@contextlib.contextmanager
def _mapped_errors(model: ModelArtifact) -> Iterator[None]:
    """Turn anything NNCF (or the ORT session it calibrates with) raises into a BackendError."""
    try:
        yield
    except EdgeoptError:
        raise
    except Exception as e:  # NNCF raises its own tree, ORT's errors and bare RuntimeErrors
        what = _WHAT.get(type(e).__name__, "NNCF's quantization failed")
        raise BackendError(
            f"quantize_nncf: {what} on {model.path.name} ({type(e).__name__}: {_first_line(e)}); "
            "leave the failing op in float with ignored_types / ignored_names, or use the "
            "'quantize' pass (ONNX Runtime's quantizer)"
        ) from e


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """Route NNCF's stdout log into ``logging`` and its progress bars into a debug record."""
    nncf_logger = logging.getLogger("nncf")
    handlers, propagate = list(nncf_logger.handlers), nncf_logger.propagate
    nncf_logger.handlers, nncf_logger.propagate = [], True
    progress = io.StringIO()
    try:
        with contextlib.redirect_stdout(progress):
            yield
    finally:
        nncf_logger.handlers, nncf_logger.propagate = handlers, propagate
        if progress.getvalue().strip():
            logger.debug("quantize_nncf: NNCF progress:\n%s", progress.getvalue().rstrip())


def _quantize(
    nncf: Any, proto: onnx.ModelProto, ctx: PassContext, opts: QuantizeNncfOptions, subset: int
) -> onnx.ModelProto:
    ignored = None
    if opts.ignored_types or opts.ignored_names:
        ignored = nncf.IgnoredScope(
            names=list(opts.ignored_names), types=list(opts.ignored_types), validate=False
        )
    result: onnx.ModelProto = nncf.quantize(
        proto,
        nncf.Dataset([dict(feed) for feed in ctx.calibration[:subset]]),
        preset=nncf.QuantizationPreset(opts.preset),
        target_device=nncf.TargetDevice(opts.target_device),
        subset_size=subset,
        fast_bias_correction=opts.fast_bias_correction,
        model_type=nncf.ModelType.TRANSFORMER if opts.model_type == "transformer" else None,
        ignored_scope=ignored,
    )
    return result


class QuantizeNncfPass:
    """int8 QDQ post-training quantization with NNCF, placed for OpenVINO's int8 kernels."""

    name: ClassVar[str] = "quantize_nncf"
    requires: ClassVar[Iterable[str]] = ("calibration",)
    options_type: ClassVar[type[BaseModel]] = QuantizeNncfOptions
    install_hint: ClassVar[str] = INSTALL_HINT

    def is_available(self) -> bool:
        """Whether nncf is installed (``edgeopt list`` says so, with `install_hint`)."""
        return nncf_available()

    def apply(self, model: ModelArtifact, ctx: PassContext) -> PassResult:
        """Quantize ``model``; writes ``quantized_nncf.onnx`` into the work folder.

        Raises:
            ConfigError: Bad options, no calibration feeds, or an opset too old to upgrade.
            BackendError: NNCF failed (the message gives its first line and what to try).
        """
        opts = parse_pass_options(self.name, QuantizeNncfOptions, ctx.options)
        if not nncf_available():
            return PassResult.not_applicable(model, f"nncf is not installed: {INSTALL_HINT}")
        proto = model.proto()
        if any(
            n.op_type in _QDQ or n.op_type.endswith("Integer") or n.op_type.startswith("QLinear")
            for n in proto.graph.node
        ):
            return PassResult.not_applicable(model, "the model is already quantized")
        candidates = _candidates(proto, opts)
        ignored = bool(opts.ignored_types or opts.ignored_names)
        if not candidates:
            return PassResult.not_applicable(
                model,
                f"no float {' / '.join(WEIGHTED_OPS)} node to quantize"
                + (" outside ignored_types / ignored_names" if ignored else "")
                + ": int8 would only add Q/DQ around element-wise ops",
            )
        if not ctx.calibration:
            raise ConfigError(
                "quantize_nncf: needs calibration feeds; give the pipeline a calibration set "
                "(--calibration / calibration: in the recipe)"
            )
        # Per-channel weight scales need DequantizeLinear's axis (opset 13); NNCF falls back to
        # per-tensor weights below it, which costs fidelity on depthwise convs.
        proto, note = upgrade_opset(proto, 13, "int8 QDQ with per-channel weights")
        notes = [note] if note else []
        if unique_node_names(proto):  # NNCF keys its graph, and ignored_names, by node name
            notes.append("unnamed or duplicate-named nodes were given unique names")
        if drop_weight_inputs(proto):
            notes.append("weights listed among the graph inputs were made initializers only")
        subset = min(opts.subset_size, len(ctx.calibration))
        with _mapped_errors(model):
            nncf: Any = importlib.import_module("nncf")
            start = time.perf_counter()
            with _quiet_nncf():
                result = _quantize(nncf, proto, ctx, opts, subset)
            seconds = time.perf_counter() - start
        done = quantized_ops(result)
        if not done:
            return PassResult.not_applicable(
                model, "NNCF placed no quantizer on a Conv / MatMul / Gemm of this model"
            )
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        artifact = save_proto(result, ctx.workdir / "quantized_nncf.onnx")
        ops = op_counts(result)
        by_type: dict[str, int] = {}
        for n in done:
            by_type[n.op_type] = by_type.get(n.op_type, 0) + 1
        report: dict[str, Any] = {
            "options": opts.model_dump(),
            "nncf_version": str(getattr(nncf, "__version__", "unknown")),
            "normalized": notes,
            "quantized_ops": len(done),
            "quantized_by_type": dict(sorted(by_type.items())),
            "float_weighted_ops": max(len(candidates) - len(done), 0),
            "qdq_nodes": sum(v for k, v in ops.items() if k in _QDQ),
            "subset_size": subset,
            "calibration_feeds": len(ctx.calibration),
            "seconds": round(seconds, 3),
            "size_before": model.size_bytes,
            "size_after": artifact.size_bytes,
        }
        logger.info(
            "quantize_nncf: %d ops int8 (%s) from %d feeds in %.1f s",
            len(done),
            report["quantized_by_type"],
            subset,
            seconds,
        )
        return PassResult(model=artifact, modified=True, report=report)
