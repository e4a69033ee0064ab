"""Model artifacts: a model file on disk plus its typed interface, loaded safely.

`load_onnx` is the one way edgeopt opens an ONNX file. It refuses, each with a typed error
naming the file: a missing file, bytes that are not an ONNX protobuf (truncated, bit-flipped,
another format), a model the onnx checker rejects, and external-data locations that point
outside the model's own folder (the path-traversal class of CVE-2024-27318/27319), or past the
end of their data file. Nothing is read through an external-data path before it is checked.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import onnx
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from edgeopt._fs import file_sha256
from edgeopt.errors import ModelLoadError, UnsafeModelError

__all__ = ["Dim", "ModelArtifact", "TensorSpec", "load_onnx", "model_summary"]

Dim = int | str | None
"""One dimension of a tensor: a size, a symbolic name, or None when unknown."""

# Protobuf refuses messages above 2 GiB; bigger files can only be truncated or hostile.
_MAX_PROTO_BYTES = 2**31 - 1


@dataclass(frozen=True)
class TensorSpec:
    """Name, element type and shape of one model input or output.

    Attributes:
        name: The tensor's name in the graph.
        dtype: The numpy dtype name, e.g. ``"float32"``.
        shape: One entry per axis: an int, a symbolic name, or None when unknown.
    """

    name: str
    dtype: str
    shape: tuple[Dim, ...]

    @property
    def is_static(self) -> bool:
        """True when every dimension is a known integer."""
        return all(isinstance(d, int) for d in self.shape)

    def concrete_shape(self, overrides: Mapping[str, int] | None = None) -> tuple[int, ...]:
        """The shape with symbolic or unknown dimensions filled in.

        Args:
            overrides: Values for symbolic dimension names; unnamed or unknown ones become 1.
        """
        overrides = overrides or {}
        out = []
        for d in self.shape:
            if isinstance(d, int):
                out.append(d)
            elif isinstance(d, str) and d in overrides:
                out.append(int(overrides[d]))
            else:
                out.append(1)
        return tuple(out)


@dataclass(frozen=True)
class ModelArtifact:
    """A model on disk and its typed interface.

    Attributes:
        path: The model file.
        inputs: The graph inputs (initializers excluded).
        outputs: The graph outputs.
        metadata: Opset, producer and other facts read from the file.
    """

    path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def size_bytes(self) -> int:
        """Size of the model file plus the external data files it names."""
        return int(self.metadata.get("size_bytes", self.path.stat().st_size))

    def sha256(self) -> str:
        """The sha256 of the model file's bytes (used to key caches)."""
        return file_sha256(self.path)

    def proto(self) -> onnx.ModelProto:
        """The model as a protobuf, external data loaded (already checked safe)."""
        return onnx.load(str(self.path))


def _dtype_name(elem_type: int) -> str:
    try:
        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name)
    except (KeyError, TypeError, ValueError):
        return str(onnx.TensorProto.DataType.Name(elem_type)).lower()


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    ttype = value.type.tensor_type
    dims: list[Dim] = []
    for d in ttype.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorSpec(name=value.name, dtype=_dtype_name(ttype.elem_type), shape=tuple(dims))


def _iter_tensors(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    """Every initializer and constant tensor in the graph, subgraphs included."""
    tensors = list(graph.initializer)
    for sparse in graph.sparse_initializer:
        tensors.extend((sparse.values, sparse.indices))
    for node in graph.node:
        tensors.extend(_node_tensors(node))
    return tensors


def _node_tensors(node: onnx.NodeProto) -> list[onnx.TensorProto]:
    """The tensors in a node's attributes: TENSOR(S), SPARSE_TENSOR(S), and in GRAPH(S)."""
    tensors: list[onnx.TensorProto] = []
    for attr in node.attribute:
        tensors.extend([attr.t] if attr.HasField("t") else [])
        tensors.extend(attr.tensors)
        for sparse in (
            *([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []),
            *attr.sparse_tensors,
        ):
            tensors.extend((sparse.values, sparse.indices))
        if attr.HasField("g"):
            tensors.extend(_iter_tensors(attr.g))
        for g in attr.graphs:
            tensors.extend(_iter_tensors(g))
    return tensors


def _model_tensors(model: onnx.ModelProto) -> list[onnx.TensorProto]:
    """Every tensor of the model: the main graph's and those in local function bodies."""
    tensors = _iter_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            tensors.extend(_node_tensors(node))
    return tensors


def _check_external_data(model: onnx.ModelProto, path: Path) -> int:
    """Refuse external-data references that leave the model's folder; return their total size."""
    base = path.parent.resolve()
    total = 0
    for tensor in _model_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        where = f"{path}: tensor {tensor.name!r}"
        if not location:
            raise ModelLoadError(f"{where} is stored externally but names no file")
        if os.path.isabs(location) or Path(location).drive:
            raise UnsafeModelError(
                f"{where} points to an absolute external-data path {location!r}; "
                "external data must sit beside the model (a relative path inside its folder)"
            )
        target = (base / location).resolve()
        if not target.is_relative_to(base):
            raise UnsafeModelError(
                f"{where} points outside the model's folder ({location!r}); "
                "refusing to read it (path traversal, CVE-2024-27318 class)"
            )
        if not target.is_file():
            raise ModelLoadError(f"{where}: external data file {location!r} is missing")
        try:
            offset = int(info.get("offset", "0"))
            length = int(info["length"]) if "length" in info else None
        except ValueError as e:
            raise ModelLoadError(f"{where} has a non-numeric external-data offset/length") from e
        size = target.stat().st_size
        if offset < 0 or offset > size or (length is not None and offset + length > size):
            raise ModelLoadError(
                f"{where}: external data range (offset {offset}, length {length}) runs past the "
                f"end of {location!r} ({size} bytes): the file is truncated"
            )
        total += length if length is not None else size - offset
    return total


def load_onnx(path: str | os.PathLike[str]) -> ModelArtifact:
    """Open an ONNX model file safely and read its interface.

    Args:
        path: The ``.onnx`` file.

    Returns:
        The model's artifact: path, inputs, outputs and metadata.

    Raises:
        ModelLoadError: The file is missing, not ONNX, truncated, or fails the onnx checker.
        UnsafeModelError: Its external data points outside its folder.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelLoadError(f"{p}: no such model file")
    size = p.stat().st_size
    if size == 0 or size > _MAX_PROTO_BYTES:
        raise ModelLoadError(f"{p}: {size} bytes is not a plausible ONNX model size")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, RecursionError, UnicodeDecodeError) as e:
        raise ModelLoadError(
            f"{p}: not a valid ONNX model (truncated, corrupt, or another format): {e}"
        ) from e
    if not model.HasField("graph") or not model.opset_import:
        raise ModelLoadError(f"{p}: not an ONNX model (no graph or no opset import)")
    external = _check_external_data(model, p)
    try:
        # With external data the checker must resolve files relative to the model, by path.
        onnx.checker.check_model(str(p) if external else model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"{p}: the onnx checker rejects this model: {first}") from e
    initializers = {t.name for t in model.graph.initializer}
    inputs = tuple(_spec(v) for v in model.graph.input if v.name not in initializers)
    outputs = tuple(_spec(v) for v in model.graph.output)
    metadata = MappingProxyType(
        {
            "opsets": {imp.domain or "ai.onnx": int(imp.version) for imp in model.opset_import},
            "ir_version": int(model.ir_version),
            "producer": f"{model.producer_name} {model.producer_version}".strip(),
            "size_bytes": size + external,
            "props": {prop.key: prop.value for prop in model.metadata_props},
        }
    )
    return ModelArtifact(path=p, inputs=inputs, outputs=outputs, metadata=metadata)


def model_summary(artifact: ModelArtifact) -> dict[str, Any]:
    """Facts for ``edgeopt info``: op histogram, parameter count, size, interface.

    Args:
        artifact: A loaded model.

    Returns:
        A JSON-ready dict.
    """
    model = artifact.proto()
    ops = collections.Counter(
        (f"{n.domain}:{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type)
        for n in model.graph.node
    )
    # Weights held in Constant nodes (and subgraphs) count too: exporters put them there.
    params = sum(
        int(np.prod(t.dims))
        for t in _iter_tensors(model.graph)
        if t.data_type not in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
    )
    return {
        "path": str(artifact.path),
        "size_bytes": artifact.size_bytes,
        "sha256": artifact.sha256(),
        "parameters": params,
        "nodes": len(model.graph.node),
        "ops": dict(ops.most_common()),
        "inputs": [vars(s) | {"shape": list(s.shape)} for s in artifact.inputs],
        "outputs": [vars(s) | {"shape": list(s.shape)} for s in artifact.outputs],
        **{k: v for k, v in artifact.metadata.items() if k != "size_bytes"},
    }
