"""Exact graph rewrites shared by the ort_layout pass and the TVM backend.

They let ONNX Runtime keep more of a CNN in its blocked layout (the ``ort_layout`` pass runs
them all); the TVM backend runs ``resize_conv_swap`` and ``ResizeSizesOnly`` before its Relax
import (`prepare_for_tvm`). Also here: the exact opset upgrade both need.

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

Each rewrite is an onnxscript rewriter rule, as onnxscript's own fusions are written: a
``pattern()`` of ops, a ``check()`` that says why a match does not apply (the reasons are counted
in the report under ``declined``, so a user sees why *their* model was not rewritten) and a
``rewrite()``. Matching is by graph structure and static shapes (``onnx.shape_inference``), never
by node or tensor names, so it works on any exporter's graph, named or not.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, ClassVar

import numpy as np
import onnx
import onnx_ir as ir
from onnx import shape_inference
from onnxscript.rewriter import MatchResult, RewriteRule, RewriteRuleClassBase, RewriteRuleSet
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.errors import ConfigError

__all__ = [
    "OrtLayoutOptions",
    "default_opset",
    "prepare_for_tvm",
    "rewrite",
    "upgrade_opset",
]

logger = logging.getLogger(__name__)

_MIN_OPSET = 13  # Resize with an empty ``roi`` input


class OrtLayoutOptions(BaseModel):
    """Options of the ort_layout pass (each rewrite can be turned off)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    se_broadcast: bool = Field(
        default=True,
        description="Broadcast the [N,C,1,1] operand of a Mul with a nearest Resize so ORT keeps "
        "the squeeze-excite multiply in its blocked (NCHWc) layout.",
    )
    resize_conv_swap: bool = Field(
        default=True,
        description="Move a 1x1 Conv that follows a spatial Resize in front of it (exact for "
        "nearest/linear); the conv runs at the lower resolution.",
    )
    nhwc_input_conv: bool = Field(
        default=True,
        description="Fold an NHWC->NCHW Transpose feeding a Conv into a 1-channel Conv on the "
        "reshaped NHWC tensor.",
    )
    transpose_to_reshape: bool = Field(
        default=False,
        description="Replace Transposes that only move size-1 axes with Reshape (exact; off by "
        "default: no measurable gain on the selfie models).",
    )


def _dims(value: ir.Value | None) -> list[int] | None:
    """The static shape of ``value``, or None when unknown or dynamic."""
    shape = None if value is None else value.shape
    if shape is None or not shape.is_static():
        return None
    return [d for d in shape.dims if isinstance(d, int)]


def _constant(value: ir.Value | None) -> np.ndarray | None:
    """The value of a constant (initializer or Constant output); None for a graph input."""
    if value is None or value.const_value is None or value.is_graph_input():
        return None
    return value.const_value.numpy()


def _attr(node: ir.Node, name: str, default: Any) -> Any:
    attr = node.attributes.get(name)
    return default if attr is None else attr.value


def _fresh(anchor: ir.Value, suffix: str) -> str:
    """An initializer name derived from ``anchor`` and not yet in its graph."""
    base = f"{anchor.name or 'edgeopt'}_{suffix}"
    graph = anchor.graph
    taken = set() if graph is None else set(graph.initializers)
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name


class _Rule(RewriteRuleClassBase):
    """A rewrite rule that records what it matched and why it declined, for the report."""

    option: ClassVar[str]  # the OrtLayoutOptions field that turns it on

    def __init__(self) -> None:
        super().__init__(name=self.option)
        self.matched: list[str] = []
        self.declined: Counter[str] = Counter()
        self.made: set[ir.Node | None] = (
            set()
        )  # nodes this rule added (seen again as the graph is walked)

    def decline(self, why: str) -> MatchResult:
        """A near miss: the pattern is there but does not qualify (counted for the report)."""
        self.declined[why] += 1
        return MatchResult().fail(why)

    @staticmethod
    def unrelated(why: str) -> MatchResult:
        """Not an instance of this pattern at all (not worth a line in the report)."""
        return MatchResult().fail(why)

    def as_rule(self) -> RewriteRule:
        """This instance as a rule (``rule()`` would make a new instance and lose the records)."""
        return RewriteRule(self.pattern, self.rewrite, self.check, name=self.name)


class SeBroadcast(_Rule):
    """``Mul(x, s)``, s of shape [N,C,1,1] computed in the graph -> ``Mul(x, Resize(s))``.

    A nearest Resize with integer scales [1,1,H,W] (asymmetric, floor) copies ``s`` to x's shape:
    bit-exact. ORT then keeps the Resize and the equal-shaped Mul in its blocked layout.
    """

    option = "se_broadcast"

    def pattern(self, op: Any, a: ir.Value, b: ir.Value) -> Any:
        return op.Mul(a, b, _outputs=["out"])

    @staticmethod
    def _roles(a: ir.Value, b: ir.Value) -> tuple[ir.Value, ir.Value]:
        db = _dims(b)
        return (a, b) if db is not None and db[2:] == [1, 1] else (b, a)

    def check(self, context: Any, a: ir.Value, b: ir.Value, out: ir.Value) -> MatchResult:
        big, small = self._roles(a, b)
        if a.producer() in self.made or b.producer() in self.made:
            return self.unrelated("made by this rule")
        sb, ss = _dims(big), _dims(small)
        if sb is None or ss is None:
            return self.decline("an operand's shape is not static")
        if len(sb) != 4 or len(ss) != 4 or ss[2:] != [1, 1] or ss[:2] != sb[:2]:
            return self.unrelated("not a [N,C,H,W] x [N,C,1,1] multiply")
        if sb[2] * sb[3] == 1:
            return self.unrelated("both operands are [N,C,1,1]")
        if _constant(small) is not None:
            return self.decline("the scale is a constant (ORT fuses it into the Conv)")
        return MatchResult()

    def rewrite(self, op: Any, a: ir.Value, b: ir.Value, out: ir.Value) -> Any:
        big, small = self._roles(a, b)
        height, width = (_dims(big) or [])[2:]
        scales = op.initializer(
            ir.tensor(np.array([1, 1, height, width], np.float32)), name=_fresh(small, "bcast")
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
    w = _dims(conv.inputs[1])
    if w is None or len(w) != 4 or w[2:] != [1, 1]:
        return "the Conv is not 1x1"
    if int(_attr(conv, "group", 1)) != 1:
        return "the Conv is grouped"
    if list(_attr(conv, "strides", [1, 1])) != [1, 1]:
        return "the Conv is strided"
    if list(_attr(conv, "dilations", [1, 1])) != [1, 1]:
        return "the Conv is dilated"
    if any(_attr(conv, "pads", [0, 0, 0, 0])) or _attr(conv, "auto_pad", "NOTSET") not in (
        "NOTSET",
        "VALID",
    ):
        return "the Conv is padded"
    return None


def _resize_problem(resize: ir.Node) -> str | None:
    """Why ``resize`` does not commute with a pointwise conv (None when it does)."""
    if _attr(resize, "mode", "nearest") not in ("nearest", "linear"):
        return "the Resize is cubic"
    if _attr(resize, "coordinate_transformation_mode", "half_pixel") == "tf_crop_and_resize":
        return "the Resize crops"
    if int(_attr(resize, "antialias", 0)) or "axes" in resize.attributes:
        return "the Resize antialiases or names axes"
    if _attr(resize, "keep_aspect_ratio_policy", "stretch") != "stretch":
        return "the Resize keeps the aspect ratio"
    sin, sout = _dims(resize.inputs[0]), _dims(resize.outputs[0])
    if sin is None or sout is None or len(sin) != 4 or sin[:2] != sout[:2]:
        return "the Resize is not a static spatial (H, W) resize"
    if any(v is not None and _constant(v) is None for v in resize.inputs[1:]):
        return "the Resize's scales or sizes are computed"
    return None


class ResizeConvSwap(_Rule):
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
        if why is None and any(_constant(v) is None for v in conv.inputs[1:] if v is not None):
            why = "the Conv's weights are not constants"
        return self.decline(why) if why else MatchResult()

    def rewrite(self, op: Any, x: ir.Value, w: ir.Value, resized: ir.Value, out: ir.Value) -> Any:
        resize, conv = resized.producer(), out.producer()
        assert resize is not None and conv is not None
        low = op.Conv(x, *conv.inputs[1:], **{k: a.value for k, a in conv.attributes.items()})
        extra = list(resize.inputs[1:])
        if len(extra) > 2 and extra[2] is not None:
            sizes = np.array(_constant(extra[2]), np.int64)
            sizes[1] = (_dims(w) or [0])[0]
            extra[2] = op.initializer(ir.tensor(sizes), name=_fresh(out, "sizes"))
        self.matched.append(f"Resize+Conv -> {out.name}")
        attrs = {k: a.value for k, a in resize.attributes.items()}
        return op.Resize(low, *extra, **attrs)


class NhwcInputConv(_Rule):
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
        weights = _constant(w)
        if list(_attr(tr, "perm", [])) != [0, 3, 1, 2]:
            return self.unrelated("the Transpose is not NHWC -> NCHW")
        if _dims(x) is None:
            return self.decline("the input's shape is not static")
        if weights is None or weights.ndim != 4:
            return self.decline("the Conv's weights are not a constant 2-D kernel")
        if int(_attr(conv, "group", 1)) != 1 or list(_attr(conv, "dilations", [1, 1])) != [1, 1]:
            return self.decline("the Conv is grouped or dilated")
        if _attr(conv, "auto_pad", "NOTSET") != "NOTSET":
            return self.decline("the Conv uses auto_pad")
        return MatchResult()

    def rewrite(self, op: Any, x: ir.Value, w: ir.Value, moved: ir.Value, out: ir.Value) -> Any:
        conv = out.producer()
        assert conv is not None
        weights = _constant(w)
        assert weights is not None
        n, h, width, c = _dims(x) or []
        cout, cin, kh, kw = weights.shape
        strides = list(_attr(conv, "strides", [1, 1]))
        pads = list(_attr(conv, "pads", [0, 0, 0, 0]))
        shape = op.initializer(
            ir.tensor(np.array([n, 1, h, width * c], np.int64)), name=_fresh(x, "flat_shape")
        )
        flat_w = weights.transpose(0, 2, 3, 1).reshape(cout, 1, kh, kw * cin).astype(weights.dtype)
        kernel = op.initializer(ir.tensor(flat_w), name=_fresh(w, "flat"))
        self.matched.append(f"Transpose+Conv -> {moved.name}")
        return op.Conv(
            op.Reshape(x, shape),
            kernel,
            *conv.inputs[2:],
            kernel_shape=[kh, kw * cin],
            strides=[strides[0], strides[1] * cin],
            pads=[pads[0], pads[1] * cin, pads[2], pads[3] * cin],
        )


class TransposeToReshape(_Rule):
    """A Transpose that moves only size-1 axes keeps the element order: it is a Reshape."""

    option = "transpose_to_reshape"

    def pattern(self, op: Any, x: ir.Value) -> Any:
        return op.Transpose(x, _outputs=["out"])

    def check(self, context: Any, x: ir.Value, out: ir.Value) -> MatchResult:
        shape, tr = _dims(x), out.producer()
        assert tr is not None
        if shape is None:
            return self.decline("the input's shape is not static")
        perm = list(_attr(tr, "perm", list(reversed(range(len(shape))))))
        moved = [p for p in perm if shape[p] != 1]
        if perm == sorted(perm):
            return self.unrelated("the Transpose is an identity")
        if moved != sorted(moved):
            return self.unrelated("the Transpose reorders axes of size > 1")
        return MatchResult()

    def rewrite(self, op: Any, x: ir.Value, out: ir.Value) -> Any:
        shape, tr = _dims(x) or [], out.producer()
        assert tr is not None
        perm = list(_attr(tr, "perm", list(reversed(range(len(shape))))))
        target = np.array([shape[p] for p in perm], np.int64)
        self.matched.append(f"Transpose -> {out.name}")
        return op.Reshape(x, op.initializer(ir.tensor(target), name=_fresh(out, "shape")))


class ResizeSizesOnly(_Rule):
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
        value = _constant(scales)
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


def prepare_for_tvm(
    model: onnx.ModelProto, swap_convs: bool = True
) -> tuple[onnx.ModelProto, dict[str, int]]:
    """``model`` ready for TVM's Relax importer: what ORT runs but the importer refuses made
    standard (`ResizeSizesOnly`) and, with ``swap_convs``, 1x1 convs moved before upsamplings
    (`ResizeConvSwap`: they then run at the low resolution). Returns the model and the count
    of each rule."""
    counts: dict[str, int] = {}
    rules: list[_Rule] = (
        [ResizeSizesOnly(), ResizeConvSwap()] if swap_convs else [ResizeSizesOnly()]
    )
    for rule in rules:
        model, counts[rule.option] = _apply(model, rule)
    return model, counts


# In the order they run: the input conv first (its Transpose would hide the conv from the
# others), the SE broadcast before the swap (the swap's shape checks need fresh shapes).
RULES: tuple[type[_Rule], ...] = (NhwcInputConv, SeBroadcast, ResizeConvSwap, TransposeToReshape)


def _apply(model: onnx.ModelProto, rule: _Rule) -> tuple[onnx.ModelProto, int]:
    """``model`` with ``rule`` applied everywhere it matches, on fresh static shapes."""
    graph = ir.serde.deserialize_model(shape_inference.infer_shapes(model))
    read = {name for name, v in graph.graph.initializers.items() if v.uses()}
    count = RewriteRuleSet([rule.as_rule()]).apply_to_model(graph)
    if not count:
        return model, 0
    for name in read:  # drop the constants the rewrite orphaned (not ones unread from the start)
        value = graph.graph.initializers.get(name)
        if (
            value is not None
            and not value.uses()
            and not (value.is_graph_input() or value.is_graph_output())
        ):
            graph.graph.initializers.pop(name)
    out = ir.serde.serialize_model(graph)
    kept = {v.name: v for v in model.graph.value_info}  # the shapes we inferred go again
    live = {name for node in out.graph.node for name in node.output}
    del out.graph.value_info[:]
    out.graph.value_info.extend(v for name, v in kept.items() if name in live)
    return out, count


def rewrite(
    model: onnx.ModelProto, options: OrtLayoutOptions
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Apply the enabled rewrites to a copy of ``model``.

    Args:
        model: An ONNX model with static shapes (dynamic parts are left alone).
        options: Which rewrites to run.

    Returns:
        The rewritten copy and its report: ``applied`` (rule -> times), ``matches`` (rule ->
        the tensors each match rewrote), ``declined`` (rule -> {reason: times}), ``skipped``
        (rule -> reason) and ``normalized`` (opset upgrades).
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    notes: list[str] = []
    if options.se_broadcast and default_opset(out) < _MIN_OPSET:
        try:  # exact: the converter's adapters keep every op's semantics
            out, note = upgrade_opset(out, _MIN_OPSET, "the se_broadcast rewrite")
            notes.append(note)
        except ConfigError as e:
            notes.append(str(e))
    opset = default_opset(out)
    report: dict[str, Any] = {"applied": {}, "skipped": {}, "normalized": notes}
    report |= {"matches": {}, "declined": {}}
    for rule_type in RULES:
        name = rule_type.option
        if not getattr(options, name):
            continue
        if name == "se_broadcast" and opset < _MIN_OPSET:
            report["skipped"][name] = f"needs opset >= {_MIN_OPSET} (model has {opset})"
            continue
        rule = rule_type()
        out, report["applied"][name] = _apply(out, rule)
        report["matches"][name] = rule.matched
        report["declined"][name] = dict(rule.declined.most_common())
    return out, report


def default_opset(model: onnx.ModelProto) -> int:
    """The model's version of the default ONNX domain."""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def upgrade_opset(model: onnx.ModelProto, minimum: int, why: str) -> tuple[onnx.ModelProto, str]:
    """``model`` at opset ``minimum`` or above, by onnx's version converter (exact adapters).

    Returns:
        The model and a note for the report ("" when no upgrade was needed).

    Raises:
        ConfigError: The converter cannot upgrade this model; the message says why.
    """
    have = default_opset(model)
    if have >= minimum:
        return model, ""
    from onnx import version_converter

    try:
        upgraded = version_converter.convert_version(model, minimum)
        onnx.checker.check_model(upgraded)
    except Exception as e:  # the converter raises RuntimeError, ValidationError, ...
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(
            f"{why} needs ONNX opset {minimum}, the model has {have}, and onnx's version "
            f"converter cannot upgrade it ({first}): re-export the model at opset {minimum}+"
        ) from e
    return upgraded, f"opset upgraded {have} -> {minimum} (onnx version converter) for {why}"
