"""Exact graph rewrites shared by the ort_layout pass and the TVM backend.

They let ONNX Runtime keep more of a CNN in its blocked layout (the ``ort_layout`` pass runs
them all); the TVM backend runs ``resize_conv_swap`` before its Relax import. Also here: the
exact opset upgrade both need.

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
``benchmarks/ort_layout.py`` and the issue notes): the SE broadcast through Expand (not a
blocked op, 0.96x), ConvTranspose(stride = kernel) as Conv1x1 + DepthToSpace (0.95x) or as
per-row convs + Concat (0.90x) or as Conv1x1 + channels-last Transpose (0.89x), splitting
``GlobalAveragePool(Add(a, b))`` (no change), and bilinear 2x as nearest 2x + depthwise
[1,2,1]/4 (15% faster in isolation but wrong on the border rows without a mask that costs more).

The pass is written on the ONNX protobuf with ``onnx.shape_inference`` for static shapes; no
maintained graph-rewriting library carries ORT-layout-specific rules like these.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.errors import ConfigError

__all__ = ["OrtLayoutOptions", "default_opset", "rewrite", "upgrade_opset"]

log = logging.getLogger(__name__)

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


class _Graph:
    """Name-level view of a graph: producers, consumers, constants, static shapes."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.matched: list[str] = []  # what each rewrite matched, for the report
        self.model = model
        self.g = model.graph
        self.inits = {t.name: t for t in self.g.initializer}
        self.outputs = {o.name for o in self.g.output}
        self.shapes: dict[str, list[int]] = {}
        inferred = shape_inference.infer_shapes(model)
        values = [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]
        for v in values:
            dims = v.type.tensor_type.shape.dim
            if v.type.HasField("tensor_type") and all(d.HasField("dim_value") for d in dims):
                self.shapes[v.name] = [int(d.dim_value) for d in dims]
        for t in self.g.initializer:
            self.shapes[t.name] = [int(d) for d in t.dims]
        # Rewrites edit this list (live references) and ``commit`` writes it back once.
        self.nodes: list[onnx.NodeProto] = list(self.g.node)
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self._taken = {n for node in self.g.node for n in (*node.input, *node.output, node.name)}
        self._taken |= set(self.inits) | {i.name for i in self.g.input}

    def index(self, node: onnx.NodeProto) -> int:
        """Position of ``node`` (by identity) in the node list."""
        return next(i for i, n in enumerate(self.nodes) if n is node)

    def commit(self) -> None:
        """Write the edited node list back into the graph."""
        copies = []
        for n in self.nodes:
            c = onnx.NodeProto()
            c.CopyFrom(n)
            copies.append(c)
        del self.g.node[:]
        self.g.node.extend(copies)

    def name(self, base: str) -> str:
        """A tensor/node name not used in the graph yet."""
        candidate, k = base, 0
        while candidate in self._taken:
            k += 1
            candidate = f"{base}_{k}"
        self._taken.add(candidate)
        return candidate

    def const(self, base: str, value: np.ndarray) -> str:
        """Add an initializer; returns its name."""
        name = self.name(base)
        tensor = numpy_helper.from_array(value, name)
        self.g.initializer.append(tensor)
        self.inits[name] = tensor
        return name

    def array(self, name: str) -> np.ndarray | None:
        """The value of an initializer, or None."""
        t = self.inits.get(name)
        return None if t is None else numpy_helper.to_array(t)

    def only_consumer(self, tensor: str) -> onnx.NodeProto | None:
        """The single node reading ``tensor`` (None if several, none, or a graph output)."""
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in self.outputs else None


def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(value: Any, default: str) -> str:
    return value.decode() if isinstance(value, bytes) else (value or default)


def _pointwise_conv(gv: _Graph, node: onnx.NodeProto) -> bool:
    a = _attrs(node)
    w = gv.shapes.get(node.input[1])
    return (
        w is not None
        and len(w) == 4
        and w[2:] == [1, 1]
        and int(a.get("group", 1)) == 1
        and list(a.get("strides", [1, 1])) == [1, 1]
        and list(a.get("dilations", [1, 1])) == [1, 1]
        and not any(a.get("pads", [0, 0, 0, 0]))
        and _text(a.get("auto_pad"), "NOTSET") in ("NOTSET", "VALID")
    )


def _se_broadcast(gv: _Graph) -> int:
    count = 0
    for node in list(gv.nodes):
        if node.op_type != "Mul" or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
            continue
        big, small = node.input
        sb, ss = gv.shapes.get(big), gv.shapes.get(small)
        if sb is not None and ss is not None and ss[2:] != [1, 1]:
            big, small, sb, ss = small, big, ss, sb
        if (
            sb is None
            or ss is None
            or len(sb) != 4
            or len(ss) != 4
            or ss[:2] != sb[:2]
            or ss[2:] != [1, 1]
            or sb[2] * sb[3] == 1
            or small in gv.inits  # a constant scale is ORT's Conv+Mul fusion's business
        ):
            continue
        scales = gv.const(f"{small}_bcast_scales", np.array([1, 1, *sb[2:]], np.float32))
        wide = gv.name(f"{small}_bcast")
        resize = helper.make_node(
            "Resize",
            [small, "", scales],
            [wide],
            name=gv.name(f"{node.name or small}_bcast"),
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
        gv.nodes.insert(gv.index(node), resize)
        node.input[list(node.input).index(small)] = wide
        gv.matched.append(f"Mul -> {node.output[0]}")
        count += 1
    return count


def _resize_swappable(gv: _Graph, node: onnx.NodeProto) -> bool:
    a = _attrs(node)
    if _text(a.get("mode"), "nearest") not in ("nearest", "linear"):
        return False
    if _text(a.get("coordinate_transformation_mode"), "half_pixel") == "tf_crop_and_resize":
        return False
    if int(a.get("antialias", 0)) or "axes" in a:
        return False
    if _text(a.get("keep_aspect_ratio_policy"), "stretch") != "stretch":
        return False
    sin, sout = gv.shapes.get(node.input[0]), gv.shapes.get(node.output[0])
    if sin is None or sout is None or len(sin) != 4 or sin[:2] != sout[:2]:
        return False
    extra = [i for i in node.input[1:] if i]
    return all(i in gv.inits for i in extra)


def _resize_conv_swap(gv: _Graph) -> int:
    count = 0
    for resize in list(gv.nodes):
        if resize.op_type != "Resize" or not _resize_swappable(gv, resize):
            continue
        conv = gv.only_consumer(resize.output[0])
        if conv is None or conv.op_type != "Conv" or conv.input[0] != resize.output[0]:
            continue
        if not _pointwise_conv(gv, conv) or not all(i in gv.inits for i in conv.input[1:] if i):
            continue
        cout = gv.shapes[conv.input[1]][0]
        final = conv.output[0]
        if len(resize.input) > 3 and resize.input[3]:
            sizes = np.array(gv.array(resize.input[3]), np.int64)
            sizes[1] = cout
            resize.input[3] = gv.const(f"{final}_sizes", sizes)
        low = gv.name(f"{final}_lowres")
        conv.input[0] = resize.input[0]
        conv.output[0] = low
        resize.input[0] = low
        resize.output[0] = final
        r, c = gv.index(resize), gv.index(conv)
        gv.nodes[r], gv.nodes[c] = conv, resize  # the conv now runs first
        gv.matched.append(f"Resize+Conv -> {resize.output[0]}")
        count += 1
    return count


def _nhwc_input_conv(gv: _Graph) -> int:
    count = 0
    for tr in list(gv.nodes):
        if tr.op_type != "Transpose" or list(_attrs(tr).get("perm", [])) != [0, 3, 1, 2]:
            continue
        conv = gv.only_consumer(tr.output[0])
        shape = gv.shapes.get(tr.input[0])
        if conv is None or conv.op_type != "Conv" or conv.input[0] != tr.output[0] or not shape:
            continue
        w = gv.array(conv.input[1])
        a = _attrs(conv)
        if (
            w is None
            or w.ndim != 4
            or int(a.get("group", 1)) != 1
            or list(a.get("dilations", [1, 1])) != [1, 1]
            or _text(a.get("auto_pad"), "NOTSET") != "NOTSET"
        ):
            continue
        n, h, wd, c = shape
        cout, cin, kh, kw = w.shape
        strides = list(a.get("strides", [1, 1]))
        pads = list(a.get("pads", [0, 0, 0, 0]))
        flat_w = w.transpose(0, 2, 3, 1).reshape(cout, 1, kh, kw * cin)
        flat_shape = gv.const(f"{tr.input[0]}_flat_shape", np.array([n, 1, h, wd * c], np.int64))
        flat = gv.name(f"{tr.input[0]}_flat")
        reshape = helper.make_node(
            "Reshape", [tr.input[0], flat_shape], [flat], name=gv.name(f"{tr.name}_flat")
        )
        new_conv = helper.make_node(
            "Conv",
            [flat, gv.const(f"{conv.input[1]}_flat", flat_w.astype(w.dtype)), *conv.input[2:]],
            list(conv.output),
            name=conv.name,
            kernel_shape=[kh, kw * cin],
            strides=[strides[0], strides[1] * cin],
            pads=[pads[0], pads[1] * cin, pads[2], pads[3] * cin],
        )
        gv.nodes[gv.index(tr)] = reshape
        gv.nodes[gv.index(conv)] = new_conv
        gv.matched.append(f"Transpose+Conv -> {tr.output[0]}")
        count += 1
    return count


def _transpose_to_reshape(gv: _Graph) -> int:
    count = 0
    for tr in list(gv.nodes):
        shape = gv.shapes.get(tr.input[0]) if tr.op_type == "Transpose" else None
        if not shape:
            continue
        perm = list(_attrs(tr).get("perm", reversed(range(len(shape)))))
        moved = [p for p in perm if shape[p] != 1]
        if moved != sorted(moved) or perm == sorted(perm):
            continue
        target = gv.const(f"{tr.output[0]}_shape", np.array([shape[p] for p in perm], np.int64))
        reshape = helper.make_node("Reshape", [tr.input[0], target], list(tr.output), name=tr.name)
        gv.nodes[gv.index(tr)] = reshape
        gv.matched.append(f"Transpose -> {tr.output[0]}")
        count += 1
    return count


def _used_names(graph: onnx.GraphProto) -> set[str]:
    """Every tensor name read in ``graph`` or its subgraphs (If/Loop bodies read outer names)."""
    used = {o.name for o in graph.output}
    for n in graph.node:
        used.update(n.input)
        for a in n.attribute:
            for sub in [a.g] if a.HasField("g") else list(a.graphs):
                used |= _used_names(sub)
    return used


def _drop_orphans(model: onnx.ModelProto, kept_unused: set[str]) -> None:
    """Remove initializers nothing reads, except graph inputs and ones unread from the start."""
    used = _used_names(model.graph) | {i.name for i in model.graph.input} | kept_unused
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def rewrite(
    model: onnx.ModelProto, options: OrtLayoutOptions
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Apply the enabled rewrites to a copy of ``model``.

    Args:
        model: An ONNX model with static shapes (dynamic parts are left alone).
        options: Which rewrites to run.

    Returns:
        The rewritten copy and ``{rewrite name: times applied}`` (plus ``skipped`` reasons).
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
    unread = {t.name for t in out.graph.initializer} - _used_names(out.graph)
    applied: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    matches: dict[str, list[str]] = {}
    steps = [
        ("nhwc_input_conv", _nhwc_input_conv),
        ("se_broadcast", _se_broadcast),
        ("resize_conv_swap", _resize_conv_swap),
        ("transpose_to_reshape", _transpose_to_reshape),
    ]
    for name, fn in steps:
        if not getattr(options, name):
            continue
        if name == "se_broadcast" and opset < _MIN_OPSET:
            skipped[name] = f"needs opset >= {_MIN_OPSET} (model has {opset})"
            continue
        gv = _Graph(out)  # fresh shapes and consumers for each rewrite
        applied[name] = fn(gv)
        matches[name] = gv.matched
        gv.commit()
    _drop_orphans(out, unread)
    report = {"applied": applied, "skipped": skipped, "normalized": notes, "matches": matches}
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
