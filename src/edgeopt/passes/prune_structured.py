"""prune_structured: remove whole conv channels, rewrite what follows, refit by least squares.

The model really gets smaller and faster: a removed channel disappears from its producer conv's
weights and bias, from every depthwise conv, BatchNormalization, per-channel constant and
Resize ``sizes`` it flows through, from squeeze-excite multiplies, and from the input weights of
every conv that consumes it. Channels that meet in an Add or a Mul (residual streams, squeeze-
excite gates, decoder skips) share one *channel space* (union-find over the graph) and are
removed together; a space that reaches a graph input or output, a Reshape, Concat, Transpose
or any op not understood here is frozen.

Which channels go: those whose contribution to the consumers' outputs is smallest on the
calibration frames, E[x_c^2] * ||W_next[:, c]||^2 summed over consumers (activation-aware; the
plain filter-norm criterion, ``criterion: l1``, is kept for comparison). How many per space:
``allocation: uniform`` removes the same fraction everywhere; ``allocation: sensitivity``
measures, for every space alone, the fidelity lost at a few pruning levels and greedily picks
the levels with the least loss per multiply-add saved until ``ratio`` of the model's
multiply-adds are gone. Kept channel counts are multiples of ``round_to`` (default 16):
ONNX Runtime's fp32 convolutions run in the blocked NCHWc layout, whose block is 16 channels
with AVX-512 (8 with AVX2), and a conv whose channel count is not a multiple of the block
falls back to slower kernels. Measured on this machine (AVX-512, 1 thread, six 1x1 convs at
128x128): 16 channels 0.39 ms, 8 channels 0.62 ms, 12 channels 0.97 ms, so pruning 16 -> 8
makes the model *slower*, while 24 -> 16 halves those convs' time.

Reconstruction (He et al. 2017, "Channel Pruning for Accelerating Very Deep Neural Networks";
Luo et al. 2017, ThiNet): after removal, convs are refit by least squares so that, fed the
*pruned* model's activations, they reproduce the original model's outputs on the calibration
frames; the bias absorbs what the removed channels contributed on average. The fit is a
ridge regression pulled toward the original (sliced) weights rather than toward zero, so a
conv seen on few rows (a squeeze-excite conv after global pooling sees one row per frame)
stays near its trained weights; with fewer rows than ``4 x`` its unknowns only the bias is
refit. ``scope: consumers`` refits the convs that read a pruned space; ``scope: downstream``
(default) refits every group-1 conv from the first pruned one to the output in graph order,
each seeing its predecessors' refit outputs, so later layers correct the error that earlier
refits could not remove (on MediaPipe selfie, removing 8 of the 24 skip-stream channels:
held-out IoU 0.906 with consumer refits, 0.973 with downstream refits). No maintained library
prunes trained ONNX CNNs structurally, so this is written here (numpy + onnx + ORT to collect
activations).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import onnx
from onnx import numpy_helper
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.artifact import ModelArtifact
from edgeopt.errors import ConfigError
from edgeopt.interface import ModelInterface
from edgeopt.metrics import compare_outputs
from edgeopt.passes._util import (
    drop_weight_inputs,
    parse_pass_options,
    save_proto,
    unique_node_names,
)
from edgeopt.passes.base import PassContext, PassResult

__all__ = ["StructuredPruneOptions", "StructuredPrunePass", "channel_spaces", "count_macs"]

log = logging.getLogger(__name__)

_SAME = {
    "Relu",
    "HardSwish",
    "HardSigmoid",
    "Sigmoid",
    "Clip",
    "LeakyRelu",
    "Tanh",
    "Identity",
    "GlobalAveragePool",
    "AveragePool",
    "MaxPool",
    "Resize",
    "BatchNormalization",
    "Elu",
    "PRelu",
    "Swish",
    "Gelu",
}
_BINARY = {"Add", "Mul", "Sub", "Div"}
# Per-space sensitivity tables by (model, data, options): a sweep over ratios measures once.
_SENSITIVITY_CACHE: collections.OrderedDict[
    tuple[Any, ...], dict[int, list[tuple[int, float, int]]]
] = collections.OrderedDict()
_SENSITIVITY_CACHE_SIZE = 8  # models per process; a long-lived process must not grow without end


class StructuredPruneOptions(BaseModel):
    """Options of the structured channel-pruning pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ratio: float = Field(
        default=0.2,
        ge=0.0,
        lt=1.0,
        description="uniform: fraction of each space's channels; sensitivity: fraction of the "
        "model's multiply-adds to remove.",
    )
    allocation: Literal["uniform", "sensitivity"] = Field(
        default="sensitivity", description="How the pruning is spread over channel spaces."
    )
    criterion: Literal["activation", "l1", "l2"] = Field(
        default="activation", description="Channel importance: output contribution or filter norm."
    )
    reconstruct: bool = Field(
        default=True, description="Refit convs by least squares on calibration data."
    )
    scope: Literal["consumers", "downstream"] = Field(
        default="downstream",
        description="Which convs to refit: those reading a pruned space, or every group-1 "
        "conv from the first pruned one to the output (slower, more faithful).",
    )
    round_to: int = Field(
        default=16,
        ge=1,
        description="Kept channel counts are multiples of this (ORT's NCHWc block: 16 on "
        "AVX-512, 8 on AVX2).",
    )
    min_channels: int = Field(default=8, ge=1, description="Never keep fewer channels per space.")
    ridge: float = Field(
        default=1e-3,
        ge=0.0,
        description="Ridge of the least squares (relative to the mean diagonal of the Gram "
        "matrix), pulling toward the original weights.",
    )
    max_rows: int = Field(
        default=40000, ge=100, description="Pixel rows sampled per least-squares refit."
    )


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


@dataclass
class Space:
    """Channels that must be pruned together, and every place they appear."""

    id: int
    channels: int
    frozen: bool = False
    producers: list[tuple[str, int]] = field(default_factory=list)  # (node, weight axis)
    members: list[tuple[str, str]] = field(default_factory=list)  # (initializer, role)
    consumers: list[str] = field(default_factory=list)  # node names (Conv / ConvTranspose)
    macs: int = 0


class _Graph:
    """Channel spaces of a model, by union-find over its 4-D activations."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = onnx.shape_inference.infer_shapes(model)
        g = self.model.graph
        self.inits = {t.name: t for t in g.initializer}
        self.nodes = {n.name: n for n in g.node}
        self.shapes: dict[str, list[int]] = {}
        for v in [*g.input, *g.value_info, *g.output]:
            dims = [
                d.dim_value if d.HasField("dim_value") else 0 for d in v.type.tensor_type.shape.dim
            ]
            self.shapes[v.name] = dims
        uses: dict[str, int] = {}
        for n in g.node:
            for i in n.input:
                uses[i] = uses.get(i, 0) + 1
        self.uses = uses
        self.parent: dict[int, int] = {}
        self.spaces: dict[int, Space] = {}
        self.frozen_by: collections.Counter[str] = collections.Counter()
        self.of: dict[str, int] = {}
        self._build()

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def _new(self, channels: int) -> int:
        i = len(self.parent)
        self.parent[i] = i
        self.spaces[i] = Space(i, channels)
        return i

    def _space(self, tensor: str) -> int | None:
        if tensor in self.inits or not tensor:
            return None
        if tensor not in self.of:
            shape = self.shapes.get(tensor, [])
            self.of[tensor] = self._new(shape[1] if len(shape) == 4 else 0)
            if len(shape) != 4:
                self.spaces[self.of[tensor]].frozen = True
        return self.find(self.of[tensor])

    def _union(self, a: int | None, b: int | None) -> None:
        if a is None or b is None:
            return
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        sa, sb = self.spaces[a], self.spaces[b]
        if sa.channels != sb.channels:
            sa.frozen = True
        self.parent[b] = a
        sa.frozen |= sb.frozen
        sa.producers += sb.producers
        sa.members += sb.members
        sa.consumers += sb.consumers
        sa.macs += sb.macs

    def _freeze(self, tensors: Iterable[str], why: str = "") -> None:
        for t in tensors:
            s = self._space(t)
            if s is not None:
                self.spaces[s].frozen = True
                self.frozen_by[why or "an op the pruner cannot follow"] += 1

    def why_frozen(self) -> str:
        """What froze the channel spaces, most frequent first (for a user-facing message)."""
        return ", ".join(f"{why} ({n})" for why, n in self.frozen_by.most_common(4))

    def _owned(self, name: str) -> bool:
        return name in self.inits and self.uses.get(name, 0) == 1

    def _build(self) -> None:
        g = self.model.graph
        self._freeze((i.name for i in g.input), "the graph input")
        for n in g.node:
            x = n.input[0] if n.input else ""
            out = n.output[0] if n.output else ""
            if (
                n.op_type in ("Conv", "ConvTranspose")
                and len(n.input) > 1
                and self._owned(n.input[1])
            ):
                w = self.inits[n.input[1]]
                group = int(_attr(n, "group", 1))
                sx, so = self._space(x), self._space(out)
                bias = n.input[2] if len(n.input) > 2 and n.input[2] else None
                if bias is not None and not self._owned(bias):
                    self._freeze([x, out], f"{n.op_type} with a shared or computed bias")
                    continue
                oshape = self.shapes.get(out, [])
                hw = int(np.prod(oshape[2:])) if len(oshape) == 4 else 0
                macs = int(np.prod(w.dims)) * hw
                if n.op_type == "ConvTranspose":
                    macs = int(np.prod(w.dims)) * int(np.prod(self.shapes.get(x, [0, 0, 0, 0])[2:]))
                cin = self.shapes.get(x, [0, 0])[1] if len(self.shapes.get(x, [])) == 4 else 0
                if n.op_type == "Conv" and group > 1 and group == cin == w.dims[0]:
                    self._union(sx, so)
                    root = self.find(sx) if sx is not None else None
                    if root is not None:
                        self.spaces[root].members.append((w.name, "dw"))
                        if bias:
                            self.spaces[root].members.append((bias, "vec"))
                        self.spaces[root].macs += macs
                    continue
                if group != 1 or sx is None or so is None:
                    self._freeze([x, out], f"grouped {n.op_type} or one of unknown shape")
                    continue
                out_axis = 0 if n.op_type == "Conv" else 1
                self.spaces[sx].consumers.append(n.name)
                self.spaces[sx].macs += macs
                self.spaces[so].producers.append((n.name, out_axis))
                self.spaces[so].macs += macs
                if bias:
                    self.spaces[so].members.append((bias, "vec"))
                continue
            if n.op_type in _SAME and x and len(n.output) == 1:
                s = self._space(x)
                self._union(s, self._space(out))
                root = self.find(s) if s is not None else None
                if root is None:
                    continue
                if n.op_type == "BatchNormalization":
                    for p in n.input[1:]:
                        self._member_or_freeze(root, p, "vec", [x, out])
                elif n.op_type == "Resize":
                    sizes = n.input[3] if len(n.input) > 3 and n.input[3] else ""
                    if sizes:
                        self._member_or_freeze(root, sizes, "sizes", [x, out])
                elif n.op_type in ("Clip", "PRelu"):
                    for p in n.input[1:]:
                        if p and p in self.inits and int(np.prod(self.inits[p].dims)) > 1:
                            self._freeze([x, out])
                continue
            if n.op_type in _BINARY and len(n.output) == 1:
                so = self._space(out)
                for i in n.input:
                    if i in self.inits:
                        dims = list(self.inits[i].dims)
                        if int(np.prod(dims)) > 1:
                            if len(dims) >= 3 and dims[-3] > 1 and int(np.prod(dims)) == dims[-3]:
                                self._member_or_freeze(
                                    self.find(so) if so is not None else None, i, "bcast", [out]
                                )
                            else:
                                self._freeze([out])
                    else:
                        self._union(so, self._space(i))
                continue
            self._freeze([*n.input, *n.output], f"{n.op_type} (not followed through)")
        self._freeze((o.name for o in g.output), "a graph output")

    def _member_or_freeze(self, root: int | None, name: str, role: str, tensors: list[str]) -> None:
        if root is None:
            return
        if self._owned(name):
            self.spaces[self.find(root)].members.append((name, role))
        else:
            self._freeze(tensors)

    def prunable(self) -> list[Space]:
        roots = {self.find(i) for i in self.parent}
        return [
            self.spaces[r]
            for r in sorted(roots)
            if not self.spaces[r].frozen
            and self.spaces[r].producers
            and self.spaces[r].channels > 1
        ]


def channel_spaces(model: onnx.ModelProto) -> list[Space]:
    """The prunable channel spaces of ``model`` (each with its producers, members, consumers)."""
    return _Graph(model).prunable()


def count_macs(model: onnx.ModelProto) -> int:
    """Multiply-adds of the model's Conv and ConvTranspose nodes (shapes by ONNX inference)."""
    m = onnx.shape_inference.infer_shapes(model)
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*m.graph.input, *m.graph.value_info, *m.graph.output]
    }
    inits = {t.name: t for t in m.graph.initializer}
    total = 0
    for n in m.graph.node:
        if n.op_type in ("Conv", "ConvTranspose") and len(n.input) > 1 and n.input[1] in inits:
            w = int(np.prod(inits[n.input[1]].dims))
            ref = n.output[0] if n.op_type == "Conv" else n.input[0]
            total += w * int(np.prod(shapes.get(ref, [0, 0, 0, 0])[2:]))
    return total


def _slice(model: onnx.ModelProto, g: _Graph, space: Space, keep: np.ndarray) -> None:
    """Remove the channels of ``space`` not in ``keep`` everywhere they appear, in place."""
    inits = {t.name: t for t in model.graph.initializer}
    nodes = {n.name: n for n in model.graph.node}

    def put(name: str, arr: np.ndarray) -> None:
        inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(arr), name))

    for node_name, axis in space.producers:
        w = nodes[node_name].input[1]
        put(w, np.take(numpy_helper.to_array(inits[w]), keep, axis=axis))
    for node_name in space.consumers:
        n = nodes[node_name]
        axis = 1 if n.op_type == "Conv" else 0
        put(n.input[1], np.take(numpy_helper.to_array(inits[n.input[1]]), keep, axis=axis))
    for name, role in space.members:
        a = numpy_helper.to_array(inits[name])
        if role in ("dw", "vec"):
            put(name, np.take(a, keep, axis=0))
        elif role == "bcast":
            put(name, np.take(a, keep, axis=a.ndim - 3))
        elif role == "sizes":
            a = a.copy()
            a[1] = len(keep)
            put(name, a)
    for n in model.graph.node:
        if (
            n.op_type == "Conv"
            and int(_attr(n, "group", 1)) > 1
            and n.input[1] in {m for m, r in space.members if r == "dw"}
        ):
            for a in n.attribute:
                if a.name == "group":
                    a.i = len(keep)


def _importance(
    g: _Graph, space: Space, criterion: str, acts: Mapping[str, np.ndarray]
) -> np.ndarray:
    score = np.zeros(space.channels)
    if criterion in ("l1", "l2"):
        for node_name, axis in space.producers:
            w = numpy_helper.to_array(g.inits[g.nodes[node_name].input[1]])
            w = np.moveaxis(w, axis, 0).reshape(space.channels, -1)
            norm = np.abs(w).sum(1) if criterion == "l1" else np.sqrt((w**2).sum(1))
            score += norm / (norm.max() + 1e-12)
        return score
    for node_name in space.consumers:
        n = g.nodes[node_name]
        w = numpy_helper.to_array(g.inits[n.input[1]])
        w = np.moveaxis(w, 1 if n.op_type == "Conv" else 0, 0).reshape(space.channels, -1)
        x = acts[n.input[0]]
        energy = (x.astype(np.float64) ** 2).mean(axis=(0, 2, 3))
        score += energy * (w.astype(np.float64) ** 2).sum(1)
    return score


def _collect(
    model: onnx.ModelProto, names: Sequence[str], feeds: Sequence[Any]
) -> dict[str, np.ndarray]:
    """Run ``model`` on ``feeds`` and return the named intermediate tensors, batched on axis 0."""
    import onnxruntime as ort

    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for name in names:
        if name not in have:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
            m.graph.output[-1].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = [sess.run(list(names), dict(f)) for f in feeds]
    return {n: np.concatenate([o[i] for o in outs]) for i, n in enumerate(names)}


def _im2col(
    x: np.ndarray, node: onnx.NodeProto, kshape: Sequence[int], rows: np.ndarray
) -> np.ndarray:
    kh, kw = int(kshape[2]), int(kshape[3])
    sh, sw = _attr(node, "strides", [1, 1])
    dh, dw = _attr(node, "dilations", [1, 1])
    pads = _attr(node, "pads", [0, 0, 0, 0])
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    n, c = x.shape[:2]
    ho = (xp.shape[2] - (dh * (kh - 1) + 1)) // sh + 1
    wo = (xp.shape[3] - (dw * (kw - 1) + 1)) // sw + 1
    b, yy, xx = np.unravel_index(rows, (n, ho, wo))
    cols = np.empty((rows.size, c, kh, kw), np.float64)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[b, :, yy * sh + i * dh, xx * sw + j * dw]
    return cols.reshape(rows.size, -1)


_ROWS_PER_UNKNOWN = 4
"""Below this many rows per unknown a refit would overfit the calibration frames: bias only."""


def _refit(
    model: onnx.ModelProto,
    node_name: str,
    x: np.ndarray,
    y: np.ndarray,
    prior: tuple[np.ndarray, np.ndarray],
    ridge: float,
    max_rows: int,
    seed: int = 0,
) -> None:
    """Refit a group-1 Conv so conv(x) ~ y: ridge least squares toward ``prior`` (w, b)."""
    inits = {t.name: t for t in model.graph.initializer}
    node = next(n for n in model.graph.node if n.name == node_name)
    w = numpy_helper.to_array(inits[node.input[1]])
    w0, b0 = prior
    total = y.shape[0] * y.shape[2] * y.shape[3]
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(total, size=min(max_rows, total), replace=False))
    a = _im2col(x, node, w.shape, rows)
    b_idx, yy, xx = np.unravel_index(rows, (y.shape[0], y.shape[2], y.shape[3]))
    t = y[b_idx, :, yy, xx].astype(np.float64)
    p = np.vstack([w0.reshape(w0.shape[0], -1).T, b0[None]]).astype(np.float64)
    if rows.size < _ROWS_PER_UNKNOWN * (a.shape[1] + 1):
        # Too few rows: keep the weights, move the bias by the mean residual.
        sol = p.copy()
        sol[-1] += (t - a @ p[:-1] - p[-1]).mean(axis=0)
    else:
        a1 = np.hstack([a, np.ones((a.shape[0], 1))])
        gram = a1.T @ a1
        lam = ridge * np.trace(gram) / gram.shape[0]
        reg = np.eye(gram.shape[0]) * lam
        reg[-1, -1] = 0.0
        sol = np.linalg.solve(gram + reg, a1.T @ t + reg @ p)
    new_w = sol[:-1].T.reshape(w.shape).astype(np.float32)
    inits[node.input[1]].CopyFrom(numpy_helper.from_array(new_w, node.input[1]))
    bias = sol[-1].astype(np.float32)
    if len(node.input) > 2 and node.input[2]:
        inits[node.input[2]].CopyFrom(numpy_helper.from_array(bias, node.input[2]))
    else:
        name = f"{node_name}__bias"
        model.graph.initializer.append(numpy_helper.from_array(bias, name))
        while len(node.input) < 3:
            node.input.append("")
        node.input[2] = name


def _levels(space: Space, opts: StructuredPruneOptions) -> list[int]:
    """Candidate kept-channel counts for a space (multiples of ``round_to``), largest first."""
    step = opts.round_to
    top = (space.channels - 1) // step * step
    return [k for k in range(top, 0, -step) if k >= opts.min_channels]


def prune_channels(
    model: onnx.ModelProto,
    keep_counts: Mapping[int, int],
    opts: StructuredPruneOptions,
    feeds: Sequence[Any],
) -> tuple[onnx.ModelProto, dict[int, list[int]]]:
    """Prune each space to its kept count, then refit the consumers; returns model and kept sets."""
    g = _Graph(model)
    spaces = {s.id: s for s in g.prunable()}
    needed = sorted({g.nodes[c].input[0] for sid in keep_counts for c in spaces[sid].consumers})
    acts = _collect(model, needed, feeds) if opts.criterion == "activation" and needed else {}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    # Recorded shapes would be stale once channels go (ORT plans buffers from them).
    del out.graph.value_info[:]
    kept: dict[int, list[int]] = {}
    for sid, count in keep_counts.items():
        space = spaces[sid]
        if count >= space.channels:
            continue
        score = _importance(g, space, opts.criterion, acts)
        keep = np.sort(np.argsort(-score, kind="stable")[:count])
        _slice(out, g, space, keep)
        kept[sid] = keep.tolist()
    if opts.reconstruct and kept:
        _reconstruct(model, out, g, [spaces[sid] for sid in kept], kept, opts, feeds)
    return out, kept


def _reconstruct(
    model: onnx.ModelProto,
    out: onnx.ModelProto,
    g: _Graph,
    pruned: Sequence[Space],
    kept: Mapping[int, list[int]],
    opts: StructuredPruneOptions,
    feeds: Sequence[Any],
) -> None:
    """Refit the convs of ``out`` (pruned ``model``) in graph order to ``model``'s outputs."""
    order = [n.name for n in model.graph.node]
    consumers = {c for s in pruned for c in s.consumers if g.nodes[c].op_type == "Conv"}
    if not consumers:
        return
    if opts.scope == "downstream":
        first = min(order.index(c) for c in consumers)
        consumers |= {
            n.name
            for n in model.graph.node[first:]
            if n.op_type == "Conv"
            and int(_attr(n, "group", 1)) == 1
            and len(n.input) > 1
            and n.input[1] in g.inits
            and len(g.shapes.get(n.input[0], [])) == 4
        }
    targets = sorted(consumers, key=order.index)
    out_kept = {p: kept[s.id] for s in pruned for p, _ in s.producers}
    in_kept = {c: kept[s.id] for s in pruned for c in s.consumers}
    reference = _collect(model, [g.nodes[c].output[0] for c in targets], feeds)
    for c in targets:
        node = g.nodes[c]
        w0 = numpy_helper.to_array(g.inits[node.input[1]])
        b_name = node.input[2] if len(node.input) > 2 else ""
        b0 = numpy_helper.to_array(g.inits[b_name]) if b_name else np.zeros(w0.shape[0])
        y = reference[node.output[0]]
        if c in out_kept:
            y, w0, b0 = y[:, out_kept[c]], w0[out_kept[c]], b0[out_kept[c]]
        if c in in_kept:
            w0 = w0[:, in_kept[c]]
        x = _collect(out, [node.input[0]], feeds)[node.input[0]]
        _refit(out, c, x, y, (w0, b0), opts.ridge, opts.max_rows)


class StructuredPrunePass:
    """Structured channel pruning with sensitivity allocation and least-squares reconstruction."""

    name: ClassVar[str] = "prune_structured"
    requires: ClassVar[Iterable[str]] = ("calibration",)
    options_type: ClassVar[type[BaseModel]] = StructuredPruneOptions

    def apply(self, model: ModelArtifact, ctx: PassContext) -> PassResult:
        """Prune ``model``'s channels; writes ``pruned_structured.onnx`` into the work folder.

        Raises:
            ConfigError: Bad options, or no calibration feeds for the activation criterion,
                reconstruction or sensitivity allocation.
        """
        opts = parse_pass_options(self.name, StructuredPruneOptions, ctx.options)
        needs_data = (
            opts.reconstruct or opts.criterion == "activation" or opts.allocation == "sensitivity"
        )
        if needs_data and not ctx.calibration:
            raise ConfigError(
                "prune_structured: needs calibration feeds (for the activation criterion, "
                "sensitivity and reconstruction); give the pipeline a calibration set, or set "
                "criterion: l1, allocation: uniform, reconstruct: false"
            )
        proto = model.proto()
        unique_node_names(proto)  # spaces and refits key nodes by name
        drop_weight_inputs(proto)
        graph = _Graph(proto)
        spaces = graph.prunable()
        if not spaces or opts.ratio == 0.0:
            why = (
                "ratio is 0"
                if spaces
                else "no prunable channel space: every conv's channels reach something that "
                f"must keep them: {graph.why_frozen() or 'no conv with its own weights'}"
            )
            return PassResult.not_applicable(model, why)
        macs_before = count_macs(proto)
        feeds = list(ctx.calibration)
        report: dict[str, Any] = {"options": opts.model_dump(), "spaces": len(spaces)}
        if opts.allocation == "uniform":
            counts = {}
            for s in spaces:
                k = round(s.channels * (1 - opts.ratio) / opts.round_to) * opts.round_to
                counts[s.id] = k if opts.min_channels <= k < s.channels else s.channels
        else:
            counts, sens = self._allocate(proto, spaces, opts, feeds, macs_before, ctx.interface)
            report["sensitivity"] = sens
        out, kept = prune_channels(proto, counts, opts, feeds)
        if not kept:
            return PassResult.not_applicable(model, "no channel could be removed at this ratio")
        macs_after = count_macs(out)
        onnx.checker.check_model(out)
        artifact = save_proto(out, ctx.workdir / "pruned_structured.onnx")
        report |= {
            "macs_before": macs_before,
            "macs_after": macs_after,
            "macs_saved": 1 - macs_after / macs_before if macs_before else 0.0,
            "params_before": sum(int(np.prod(t.dims)) for t in proto.graph.initializer),
            "params_after": sum(int(np.prod(t.dims)) for t in out.graph.initializer),
            "channels": {
                ", ".join(p for p, _ in s.producers): [s.channels, counts.get(s.id, s.channels)]
                for s in spaces
                if s.id in kept
            },
        }
        return PassResult(model=artifact, modified=True, report=report)

    def _allocate(
        self,
        proto: onnx.ModelProto,
        spaces: list[Space],
        opts: StructuredPruneOptions,
        feeds: list[Any],
        macs_before: int,
        interface: ModelInterface | None = None,
    ) -> tuple[dict[int, int], dict[str, Any]]:
        """Greedy allocation by measured loss per multiply-add saved (the table is cached).

        The loss is 1 - cosine of the outputs, plus 1 - mask IoU when the interface reads the
        output as a person mask (never a threshold of raw logits).
        """
        import hashlib

        h = hashlib.sha256(proto.SerializeToString())
        for f in feeds[:2]:
            for v in f.values():
                h.update(np.ascontiguousarray(v).tobytes())
        key = (
            h.hexdigest(),
            opts.criterion,
            opts.round_to,
            opts.min_channels,
            opts.ridge,
            len(feeds),
            interface.model_dump_json() if interface is not None else None,
        )
        if key in _SENSITIVITY_CACHE:
            _SENSITIVITY_CACHE.move_to_end(key)
        else:
            while len(_SENSITIVITY_CACHE) >= _SENSITIVITY_CACHE_SIZE:
                _SENSITIVITY_CACHE.popitem(last=False)
            _SENSITIVITY_CACHE[key] = self._table(
                proto, spaces, opts, feeds, macs_before, interface
            )
        table = _SENSITIVITY_CACHE[key]
        return self._greedy(spaces, table, opts, macs_before)

    def _table(
        self,
        proto: onnx.ModelProto,
        spaces: list[Space],
        opts: StructuredPruneOptions,
        feeds: list[Any],
        macs_before: int,
        interface: ModelInterface | None = None,
    ) -> dict[int, list[tuple[int, float, int]]]:
        mask = interface is not None and interface.has_mask
        name = interface.output_name if interface and interface.output_name else None
        name = name or proto.graph.output[0].name
        to_mask = interface.person_probability if interface is not None and mask else None
        # [N, ...] batches split into per-frame arrays that keep a batch axis of 1.
        reference = [y[None] for y in _collect(proto, [name], feeds)[name]]
        quick = opts.model_copy(update={"reconstruct": True, "scope": "consumers"})
        table: dict[int, list[tuple[int, float, int]]] = {}
        for s in spaces:
            levels = _levels(s, opts)
            probe = [levels[i] for i in sorted({0, len(levels) // 2, len(levels) - 1}) if levels]
            rows = []
            for k in probe:
                m, _ = prune_channels(proto, {s.id: k}, quick, feeds)
                y = [a[None] for a in _collect(m, [name], feeds)[name]]
                f = compare_outputs(reference, y, to_mask)
                loss = (1.0 - f.cosine) + (1.0 - f.iou if f.kind == "mask" else 0.0)
                rows.append((k, loss, macs_before - count_macs(m)))
            table[s.id] = rows
        return table

    def _greedy(
        self,
        spaces: list[Space],
        table: dict[int, list[tuple[int, float, int]]],
        opts: StructuredPruneOptions,
        macs_before: int,
    ) -> tuple[dict[int, int], dict[str, Any]]:
        target = opts.ratio * macs_before
        state = {s.id: -1 for s in spaces}
        saved, chosen = 0.0, {s.id: s.channels for s in spaces}
        while saved < target:
            best = None
            for sid, i in state.items():
                if i + 1 >= len(table[sid]):
                    continue
                k, loss, gain = table[sid][i + 1]
                prev_loss, prev_gain = (0.0, 0) if i < 0 else table[sid][i][1:]
                dgain = gain - prev_gain
                cost = (loss - prev_loss) / dgain if dgain > 0 else float("inf")
                if best is None or cost < best[0]:
                    best = (cost, sid, k, dgain)
            if best is None:
                break
            _, sid, k, dgain = best
            state[sid] += 1
            chosen[sid] = k
            saved += dgain
        sens = {
            ", ".join(p for p, _ in s.producers): [
                [k, round(loss, 5), g] for k, loss, g in table[s.id]
            ]
            for s in spaces
        }
        return chosen, sens
