"""Channel spaces of a CNN for structured pruning: which output channels can go together.

A space is a set of channels that must be removed as one (a conv's outputs and everything that
reads them: depthwise convs, element-wise ops, broadcast vectors), found by union-find over the
graph's 4-D activations; a space touched by something that must keep its channels (a graph input
or output, an op the analysis does not follow) is frozen, and the reason is counted. Also the
multiply-add count used to size a pruning target. Part of `edgeopt.passes.prune_structured`.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

__all__ = ["ChannelGraph", "Space", "channel_spaces", "count_macs", "node_attr"]


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


def node_attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
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


class ChannelGraph:
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
                group = int(node_attr(n, "group", 1))
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
    return ChannelGraph(model).prunable()


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
