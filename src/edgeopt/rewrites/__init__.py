"""Exact graph rewrites as rules, shared by the passes and the backends.

`rewrite` runs the ONNX Runtime layout rules (`edgeopt.rewrites.layout`: what each does, why it
is exact and what it measured) for the ``ort_layout`` pass; `prepare_for_tvm` runs the rules
TVM's Relax importer needs (`edgeopt.rewrites.tvm_import`) and ``resize_conv_swap``; `opset`
holds the exact opset upgrade both need.

Each rule is an onnxscript rewriter rule (`edgeopt.rewrites._rule`), as onnxscript's own fusions
are written: a ``pattern()`` of ops, a ``check()`` that says why a match does not apply (the
reasons are counted in the report under ``declined``, so a user sees why *their* model was not
rewritten) and a ``rewrite()``. Matching is by graph structure and static shapes, never by node
or tensor names, so the rules work on any exporter's graph, named or not.
"""

from __future__ import annotations

from typing import Any

import onnx
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.errors import ConfigError
from edgeopt.rewrites._rule import Rule, apply_rule
from edgeopt.rewrites.layout import NhwcInputConv, ResizeConvSwap, SeBroadcast, TransposeToReshape
from edgeopt.rewrites.opset import default_opset, upgrade_opset
from edgeopt.rewrites.tvm_import import ResizeSizesOnly

__all__ = [
    "RULES",
    "OrtLayoutOptions",
    "default_opset",
    "prepare_for_tvm",
    "rewrite",
    "upgrade_opset",
]

_MIN_OPSET = 13  # Resize with an empty ``roi`` input


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


# In the order they run: the input conv first (its Transpose would hide the conv from the
# others), the SE broadcast before the swap (the swap's shape checks need fresh shapes).
RULES: tuple[type[Rule], ...] = (NhwcInputConv, SeBroadcast, ResizeConvSwap, TransposeToReshape)


def prepare_for_tvm(
    model: onnx.ModelProto, swap_convs: bool = True
) -> tuple[onnx.ModelProto, dict[str, int]]:
    """``model`` ready for TVM's Relax importer: what ORT runs but the importer refuses made
    standard (`ResizeSizesOnly`) and, with ``swap_convs``, 1x1 convs moved before upsamplings
    (`ResizeConvSwap`: they then run at the low resolution). Returns the model and the count
    of each rule."""
    counts: dict[str, int] = {}
    rules: list[Rule] = [ResizeSizesOnly(), ResizeConvSwap()] if swap_convs else [ResizeSizesOnly()]
    for rule in rules:
        model, counts[rule.option] = apply_rule(model, rule)
    return model, counts


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
        out, report["applied"][name] = apply_rule(out, rule)
        report["matches"][name] = rule.matched
        report["declined"][name] = dict(rule.declined.most_common())
    return out, report
