"""Removing channels and refitting what reads them, for structured pruning.

`prune_channels` slices a set of channel spaces down to the kept channels (ranked by importance:
weight L1 or activation energy on calibration data), and refits each consumer conv by ridge
least squares so the pruned model reproduces the original activations (see the method in
`edgeopt.passes.prune_structured`). Part of that pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import onnx
from onnx import numpy_helper
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.passes._channel_spaces import ChannelGraph, Space, node_attr

__all__ = ["StructuredPruneOptions", "collect_activations", "kept_levels", "prune_channels"]


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


def _slice(model: onnx.ModelProto, g: ChannelGraph, space: Space, keep: np.ndarray) -> None:
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
            and int(node_attr(n, "group", 1)) > 1
            and n.input[1] in {m for m, r in space.members if r == "dw"}
        ):
            for a in n.attribute:
                if a.name == "group":
                    a.i = len(keep)


def _importance(
    g: ChannelGraph, space: Space, criterion: str, acts: Mapping[str, np.ndarray]
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


def collect_activations(
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
    sh, sw = node_attr(node, "strides", [1, 1])
    dh, dw = node_attr(node, "dilations", [1, 1])
    pads = node_attr(node, "pads", [0, 0, 0, 0])
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


def kept_levels(space: Space, opts: StructuredPruneOptions) -> list[int]:
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
    g = ChannelGraph(model)
    spaces = {s.id: s for s in g.prunable()}
    needed = sorted({g.nodes[c].input[0] for sid in keep_counts for c in spaces[sid].consumers})
    acts = (
        collect_activations(model, needed, feeds)
        if opts.criterion == "activation" and needed
        else {}
    )
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
    g: ChannelGraph,
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
            and int(node_attr(n, "group", 1)) == 1
            and len(n.input) > 1
            and n.input[1] in g.inits
            and len(g.shapes.get(n.input[0], [])) == 4
        }
    targets = sorted(consumers, key=order.index)
    out_kept = {p: kept[s.id] for s in pruned for p, _ in s.producers}
    in_kept = {c: kept[s.id] for s in pruned for c in s.consumers}
    reference = collect_activations(model, [g.nodes[c].output[0] for c in targets], feeds)
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
        x = collect_activations(out, [node.input[0]], feeds)[node.input[0]]
        _refit(out, c, x, y, (w0, b0), opts.ridge, opts.max_rows)
