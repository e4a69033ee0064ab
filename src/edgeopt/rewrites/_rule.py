"""The rule base the rewrites share: onnxscript's rewriter, with what each rule matched and why
it declined counted for the report, and the value helpers (static shapes, constants) rules use.

Matching is by graph structure and static shapes (``onnx.shape_inference``), never by node or
tensor names, so rules work on any exporter's graph, named or not.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

import numpy as np
import onnx
import onnx_ir as ir
from onnx import shape_inference
from onnxscript.rewriter import MatchResult, RewriteRule, RewriteRuleClassBase, RewriteRuleSet

__all__ = ["Rule", "apply_rule", "attr", "constant", "dims", "fresh_name"]


def dims(value: ir.Value | None) -> list[int] | None:
    """The static shape of ``value``, or None when unknown or dynamic."""
    shape = None if value is None else value.shape
    if shape is None or not shape.is_static():
        return None
    return [d for d in shape.dims if isinstance(d, int)]


def constant(value: ir.Value | None) -> np.ndarray | None:
    """The value of a constant (initializer or Constant output); None for a graph input."""
    if value is None or value.const_value is None or value.is_graph_input():
        return None
    return value.const_value.numpy()


def attr(node: ir.Node, name: str, default: Any) -> Any:
    attr = node.attributes.get(name)
    return default if attr is None else attr.value


def fresh_name(anchor: ir.Value, suffix: str) -> str:
    """An initializer name derived from ``anchor`` and not yet in its graph."""
    base = f"{anchor.name or 'edgeopt'}_{suffix}"
    graph = anchor.graph
    taken = set() if graph is None else set(graph.initializers)
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    return name


class Rule(RewriteRuleClassBase):
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


def apply_rule(model: onnx.ModelProto, rule: Rule) -> tuple[onnx.ModelProto, int]:
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
