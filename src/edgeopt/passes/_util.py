"""Helpers shared by the passes: option validation, saving a model, op histograms."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import onnx
from pydantic import BaseModel

from edgeopt._fs import atomic_path
from edgeopt.artifact import ModelArtifact, load_onnx
from edgeopt.backends.base import parse_options
from edgeopt.rewrites import default_opset, upgrade_opset

__all__ = [
    "default_opset",
    "drop_weight_inputs",
    "op_counts",
    "param_count",
    "parse_pass_options",
    "save_proto",
    "unique_node_names",
    "upgrade_opset",
]

_O = TypeVar("_O", bound=BaseModel)


def parse_pass_options(pass_name: str, options_type: type[_O], raw: Mapping[str, Any] | Any) -> _O:
    """Validate a pass's options; errors name the pass and the field.

    Raises:
        ConfigError: An unknown option or a value of the wrong type.
    """
    return parse_options(options_type, raw, pass_name, kind="pass")


def save_proto(model: onnx.ModelProto, path: Path) -> ModelArtifact:
    """Write ``model`` atomically to ``path`` and load it back through the safe loader."""
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))
    return load_onnx(path)


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    """Histogram of the graph's op types (domain-qualified outside the default domain)."""
    ops = collections.Counter(
        (f"{n.domain}:{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type)
        for n in model.graph.node
    )
    return dict(sorted(ops.items()))


def param_count(model: onnx.ModelProto) -> int:
    """Number of elements in the graph's initializers."""
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer)


def unique_node_names(model: onnx.ModelProto) -> list[str]:
    """Give every nameless or duplicate-named node a unique name, in place (ONNX allows both,
    and several converters write no names; ORT's quantizer and the pruning pass key nodes by
    name). Returns the names given."""
    taken: set[str] = set()
    given = []
    for i, node in enumerate(model.graph.node):
        if node.name and node.name not in taken:
            taken.add(node.name)
            continue
        base = node.name or node.op_type
        name = f"{base}_{i}"
        while name in taken:
            name += "_"
        node.name = name
        taken.add(name)
        given.append(name)
    return given


def drop_weight_inputs(model: onnx.ModelProto) -> list[str]:
    """Remove graph inputs that are initializers (weights listed as inputs), in place.

    Older exporters (IR < 4 style) list every weight among the graph inputs, which makes them
    overridable feeds; passes that rename or retype weights then break SSA. The model's real
    inputs are unchanged. Returns the names removed.
    """
    weights = {t.name for t in model.graph.initializer}
    keep = [v for v in model.graph.input if v.name not in weights]
    dropped = [v.name for v in model.graph.input if v.name in weights]
    if dropped:
        del model.graph.input[:]
        model.graph.input.extend(keep)
    return dropped
