"""Import a TensorFlow Lite model (``.tflite``) as an ONNX model, without TensorFlow.

Why this is hand-written: no maintained library converts TFLite to ONNX without TensorFlow
(tf2onnx, the usual tool, needs TensorFlow installed to read a .tflite file). A .tflite file
is a flatbuffer with a published schema, which the small pure-Python ``tflite`` package
reads, and the operators of edge vision models map almost one-to-one onto ONNX operators.

What the import does:

- reads and checks the flatbuffer (identifier ``TFL3``, counts, buffer bounds, shapes) before
  converting, because the file is untrusted input: a truncated, corrupt or hostile file raises
  :class:`~edgeopt.errors.ModelLoadError`, never another exception type;
- folds DEQUANTIZE of constants (fp16 weights, int8 affine weights) into fp32 initializers;
- computes channels-first (NCHW) internally, as ONNX's Conv wants, while keeping the model's
  NHWC interface by default (one Transpose at each rank-4 input and output), or exposing NCHW
  with ``layout="nchw"``; transposes are made only where a layout is missing (see
  :mod:`edgeopt.frontends._tflite_ops`), so none come in needless pairs;
- turns SAME/VALID padding into explicit ONNX pads by TensorFlow's rule and fused
  activations into nodes;
- raises :class:`~edgeopt.errors.UnsupportedOpError` for an operator it has no converter for
  (or a quantized activation), rather than writing a wrong model;
- ends with the ONNX checker and strict shape inference, which compares every converted
  tensor's shape with the shape the TFLite file declares.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import onnx
import tflite
from onnx import TensorProto, helper

from edgeopt._fs import record_source
from edgeopt.errors import ConfigError, EdgeoptError, ModelLoadError, UnsupportedOpError

# Imported for their side effect: they register their converters.
from edgeopt.frontends import _tflite_mediapipe, _tflite_nn, _tflite_tensors  # noqa: F401
from edgeopt.frontends._tflite_ops import (
    ARITY,
    CF,
    CONVERTERS,
    NATURAL,
    TO_CF,
    Context,
    Operator,
    Quantization,
    Tensor,
)
from edgeopt.frontends._tflite_sparse import densify

__all__ = ["convert_tflite"]

logger = logging.getLogger(__name__)

OPSET: Final = 17
_IDENTIFIER: Final = b"TFL3"
# Limits for untrusted files: far above any edge model, low enough that nothing derived
# from them can exhaust memory or overflow ONNX's int64 shape arithmetic.
_MAX_FILE_BYTES: Final = 1 << 31
_MAX_RANK: Final = 8
_MAX_DIM: Final = (1 << 31) - 1
_MAX_ELEMENTS: Final = 1 << 40

_T = tflite.TensorType
_NUMPY_TYPES: Final[dict[int, np.dtype[Any]]] = {
    _T.FLOAT32: np.dtype("<f4"),
    _T.FLOAT16: np.dtype("<f2"),
    _T.FLOAT64: np.dtype("<f8"),
    _T.INT8: np.dtype("i1"),
    _T.UINT8: np.dtype("u1"),
    _T.INT16: np.dtype("<i2"),
    _T.UINT16: np.dtype("<u2"),
    _T.INT32: np.dtype("<i4"),
    _T.UINT32: np.dtype("<u4"),
    _T.INT64: np.dtype("<i8"),
    _T.UINT64: np.dtype("<u8"),
    _T.BOOL: np.dtype("?"),
}
_TYPE_NAMES: Final[dict[int, str]] = {
    int(v): str(k) for k, v in vars(_T).items() if not k.startswith("_")
}
_BUILTIN_NAMES: Final[dict[int, str]] = {
    int(v): str(k) for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")
}


@dataclass(frozen=True)
class _Graph:
    """The checked contents of a model's main subgraph."""

    name: str
    description: str
    tensors: dict[int, Tensor]
    operators: list[Operator]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def convert_tflite(
    path: str | os.PathLike[str], *, layout: Literal["nhwc", "nchw"] = "nhwc"
) -> onnx.ModelProto:
    """Convert a float TFLite model to an equivalent ONNX model.

    Args:
        path: The ``.tflite`` file.
        layout: The interface of the ONNX model's rank-4 inputs and outputs: ``"nhwc"``
            (the TFLite model's own) or ``"nchw"``. Inside, the graph is NCHW either way.

    Returns:
        A checked, shape-inferred ONNX model (opset 17) whose inputs and outputs carry the
        TFLite tensors' names, float32 types and static shapes.

    Raises:
        ModelLoadError: The file is missing, unreadable, truncated, corrupt or not TFLite.
        UnsupportedOpError: The model uses an operator (or a quantized tensor) that this
            importer cannot convert; it names the operator, its index and the file.
        ConfigError: ``layout`` is neither ``"nhwc"`` nor ``"nchw"``.
    """
    if layout not in ("nhwc", "nchw"):
        raise ConfigError(f"layout must be 'nhwc' or 'nchw', not {layout!r}")
    name = os.fspath(path)
    data = _read(name)
    try:
        graph = _Reader(data, name).graph()
        model = _build(graph, name, CF if layout == "nchw" else NATURAL)
        onnx.checker.check_model(model)
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except EdgeoptError:
        raise
    except Exception as exc:
        # The flatbuffer reader trusts the file, so corruption surfaces as any exception
        # type at all (IndexError, struct.error, ValueError, ...); callers get one type.
        detail = f"{type(exc).__name__}: {exc}"
        raise ModelLoadError(f"{name}: not a valid TFLite model ({detail})") from exc
    # Provenance, so a runtime of the source format (the LiteRT backend) can find the original:
    # its file name and sha256, never its path (the same .tflite gives the same bytes on every
    # machine and in every folder); this machine remembers where it is (`record_source`).
    digest = hashlib.sha256(data).hexdigest()
    onnx.helper.set_model_props(
        model,
        {
            "edgeopt.source_format": "tflite",
            "edgeopt.source_name": Path(name).name,
            "edgeopt.source_sha256": digest,
        },
    )
    record_source(name, digest)
    logger.debug("converted %s: %d ONNX nodes", name, len(model.graph.node))
    return model


def _read(name: str) -> bytes:
    try:
        with open(name, "rb") as f:
            data = f.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ModelLoadError(f"{name}: cannot read the model file ({exc})") from exc
    if len(data) > _MAX_FILE_BYTES:
        raise ModelLoadError(f"{name}: not a valid TFLite model (larger than 2 GiB)")
    return data


def _ints(vector: Any) -> tuple[int, ...]:
    """Turn a flatbuffer int vector (the reader gives 0 for an absent one) into a tuple."""
    if isinstance(vector, int):
        return ()
    return tuple(int(v) for v in vector.tolist())


class _Reader:
    """Reads the main subgraph of a TFLite flatbuffer, checking it as it goes."""

    def __init__(self, data: bytes, path: str) -> None:
        self.data = data
        self.path = path
        if len(data) < 8 or data[4:8] != _IDENTIFIER:
            raise self.error(f"file identifier {data[4:8]!r}, expected {_IDENTIFIER!r}")
        self.model = tflite.Model.GetRootAs(data, 0)
        self.n_buffers = self.count(self.model.BuffersLength(), "buffer")

    def error(self, problem: str) -> ModelLoadError:
        return ModelLoadError(f"{self.path}: not a valid TFLite model ({problem})")

    def count(self, n: Any, what: str) -> int:
        # Each entry of a table vector takes at least 4 bytes, so a larger count is corrupt.
        count = int(n)
        if not 0 <= count <= len(self.data) // 4:
            raise self.error(f"{what} count {count} does not fit in a {len(self.data)}-byte file")
        return count

    def graph(self) -> _Graph:
        model = self.model
        if self.count(model.SubgraphsLength(), "subgraph") < 1:
            raise self.error("no subgraph")
        kinds = [
            self.op_kind(model.OperatorCodes(i))
            for i in range(self.count(model.OperatorCodesLength(), "operator code"))
        ]
        sub = model.Subgraphs(0)
        n_tensors = self.count(sub.TensorsLength(), "tensor")
        inputs, outputs = _ints(sub.InputsAsNumpy()), _ints(sub.OutputsAsNumpy())
        if not outputs:
            raise self.error("the graph has no outputs")
        operators = [
            self.operator(sub.Operators(i), i, kinds)
            for i in range(self.count(sub.OperatorsLength(), "operator"))
        ]
        used = {*inputs, *outputs}
        for op in operators:
            used.update(i for i in op.inputs if i >= 0)
            used.update(op.outputs)
        if any(not 0 <= i < n_tensors for i in used):
            raise self.error(f"a tensor index is outside 0..{n_tensors - 1}")
        tensors: dict[int, Tensor] = {}
        names: set[str] = set()
        for index in sorted(used):
            tensor = self.tensor(sub.Tensors(index), index, names)
            names.add(tensor.name)
            tensors[index] = tensor
        description = model.Description() or b""
        name = (sub.Name() or b"").decode("utf-8", "replace") or Path(self.path).stem
        return _Graph(
            name, description.decode("utf-8", "replace"), tensors, operators, inputs, outputs
        )

    def op_kind(self, code: Any) -> str:
        builtin = max(int(code.BuiltinCode()), int(code.DeprecatedBuiltinCode()))
        if builtin == tflite.BuiltinOperator.CUSTOM:
            custom = code.CustomCode() or b""
            return "CUSTOM:" + custom.decode("utf-8", "replace")
        return _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")

    def operator(self, op: Any, index: int, kinds: list[str]) -> Operator:
        code = int(op.OpcodeIndex())
        if not 0 <= code < len(kinds):
            raise self.error(f"operator {index} has opcode index {code} of {len(kinds)}")
        custom = op.CustomOptionsAsNumpy()
        return Operator(
            index=index,
            kind=kinds[code],
            inputs=_ints(op.InputsAsNumpy()),
            outputs=_ints(op.OutputsAsNumpy()),
            options_type=int(op.BuiltinOptionsType()),
            options=op.BuiltinOptions(),
            custom_options=b"" if isinstance(custom, int) else custom.tobytes(),
        )

    def tensor(self, t: Any, index: int, taken: set[str]) -> Tensor:
        name = (t.Name() or b"").decode("utf-8", "replace")
        if not name or name in taken:
            name = f"{name or 'tensor'}_{index}"
            while name in taken:
                name += "_"
        shape = _ints(t.ShapeAsNumpy())
        if len(shape) > _MAX_RANK or any(not 0 <= d <= _MAX_DIM for d in shape):
            raise self.error(f"tensor {name!r} has shape {list(shape)}")
        if math.prod(shape) > _MAX_ELEMENTS:
            raise self.error(f"tensor {name!r} has {math.prod(shape)} elements")
        dtype = int(t.Type())
        raw = self.buffer(int(t.Buffer()), name)
        if not raw:
            return Tensor(index, name, dtype, shape, None, None)
        if dtype not in _NUMPY_TYPES:
            kind = _TYPE_NAMES.get(dtype, str(dtype))
            raise UnsupportedOpError(f"{kind} constant tensor", name, self.path)
        np_type = _NUMPY_TYPES[dtype]
        if t.Sparsity() is not None:
            if len(raw) % np_type.itemsize:
                raise self.error(f"sparse tensor {name!r} has a {len(raw)}-byte buffer")
            try:
                data = densify(np.frombuffer(raw, np_type), shape, t.Sparsity())
            except (ValueError, IndexError, RecursionError) as e:
                raise self.error(f"sparse tensor {name!r}: {e}") from e
            quant = self.quantization(t.Quantization()) if np_type.kind in "iu" else None
            return Tensor(index, name, dtype, shape, data, quant)
        if len(raw) != math.prod(shape) * np_type.itemsize:
            raise self.error(f"tensor {name!r} {list(shape)} has a {len(raw)}-byte buffer")
        data = np.frombuffer(raw, np_type).reshape(shape)
        quant = self.quantization(t.Quantization()) if np_type.kind in "iu" else None
        return Tensor(index, name, dtype, shape, data, quant)

    def buffer(self, index: int, name: str) -> bytes:
        if index == 0:
            return b""  # buffer 0 is the schema's "no data" sentinel
        if not 0 < index < self.n_buffers:
            raise self.error(f"tensor {name!r} refers to buffer {index} of {self.n_buffers}")
        buf = self.model.Buffers(index)
        offset, size = int(buf.Offset()), int(buf.Size())
        if offset > 1:
            # Models over 2 GB keep their weights after the flatbuffer, addressed by offset.
            if offset + size > len(self.data):
                raise self.error(f"buffer {index} ends beyond the end of the file")
            return self.data[offset : offset + size]
        raw = buf.DataAsNumpy()
        return b"" if isinstance(raw, int) else bytes(raw.tobytes())

    def quantization(self, q: Any) -> Quantization | None:
        if q is None:
            return None
        scale, zero = q.ScaleAsNumpy(), q.ZeroPointAsNumpy()
        if isinstance(scale, int):
            return None
        zero_point = np.zeros(1, np.int64) if isinstance(zero, int) else zero.astype(np.int64)
        return Quantization(scale.astype(np.float32), zero_point, int(q.QuantizedDimension()))


def _shape_in(shape: tuple[int, ...], layout: str) -> list[int]:
    if layout == CF and len(shape) == 4:
        return [shape[a] for a in TO_CF]
    return list(shape)


def _float_only(tensor: Tensor, what: str, node: str | int, path: str) -> None:
    # Quantized or integer activations would need other ONNX operators; refusing them beats
    # emitting a float graph that silently computes something else.
    if tensor.dtype != tflite.TensorType.FLOAT32:
        kind = _TYPE_NAMES.get(tensor.dtype, str(tensor.dtype))
        hint = "only float32 models (fp16 or int8 weights allowed) are supported"
        raise UnsupportedOpError(f"{what} on {kind} tensor {tensor.name!r}", node, path, hint)


def _build(graph: _Graph, path: str, interface: str) -> onnx.ModelProto:
    ctx = Context(path, graph.tensors)
    inputs = []
    for index in graph.inputs:
        tensor = ctx.tensor(index)
        _float_only(tensor, "graph input", tensor.name, path)
        if index in ctx.consts or index in ctx.values:
            raise ctx.fail(f"graph input {tensor.name!r} is a constant or listed twice")
        ctx.claim(index)
        layout = interface if len(tensor.shape) == 4 else NATURAL
        ctx.values[index] = {layout: tensor.name}
        shape = _shape_in(tensor.shape, layout)
        inputs.append(helper.make_tensor_value_info(tensor.name, TensorProto.FLOAT, shape))

    missing = sorted({op.kind for op in graph.operators if op.kind not in CONVERTERS})
    if missing:  # every one at once: a user can judge the model, not one op per try
        counts = {k: sum(op.kind == k for op in graph.operators) for k in missing}
        first = next(op for op in graph.operators if op.kind in counts)
        listed = ", ".join(f"{k} x{n}" for k, n in counts.items())
        raise UnsupportedOpError(
            ", ".join(missing),
            first.index,
            path,
            hint=f"the importer has no converter for {listed}; convert the model without "
            "them, or add converters in edgeopt/frontends/_tflite_ops.py",
        )
    for op in graph.operators:
        ctx.op = op
        convert = CONVERTERS[op.kind]
        low, high = ARITY[op.kind]
        if not low <= len(op.inputs) <= high or len(op.outputs) != 1:
            raise ctx.fail(f"{len(op.inputs)} inputs and {len(op.outputs)} outputs")
        if op.kind not in ("DEQUANTIZE", "DENSIFY"):  # constant folding, any dtype
            for i in op.inputs:
                if i >= 0 and ctx.const(i) is None:
                    _float_only(ctx.tensor(i), op.kind, op.index, path)
            for i in op.outputs:
                _float_only(ctx.tensor(i), op.kind, op.index, path)
        convert(ctx, op)
        for i in op.outputs:
            if i not in ctx.values and i not in ctx.consts:
                raise ctx.fail(f"output {ctx.tensor(i).name!r} was not produced")
    ctx.op = None

    rename: dict[str, str] = {}
    outputs = []
    for index in graph.outputs:
        tensor = ctx.tensor(index)
        _float_only(tensor, "graph output", tensor.name, path)
        layout = interface if len(tensor.shape) == 4 else NATURAL
        value = ctx.get(index, layout)
        if value != tensor.name:
            if value in ctx.node_outputs and value not in rename and ctx.claim(index):
                rename[value] = tensor.name
            elif ctx.claim(index):
                ctx.nodes.append(helper.make_node("Identity", [value], [tensor.name]))
            else:
                raise ctx.fail(f"graph output {tensor.name!r} is listed twice or is a constant")
        shape = _shape_in(tensor.shape, layout)
        outputs.append(helper.make_tensor_value_info(tensor.name, TensorProto.FLOAT, shape))

    # Give each produced value its TFLite tensor's name, so the graph reads like the source.
    for index, have in ctx.values.items():
        layout, value = next(iter(have.items()))
        if value in ctx.node_outputs and value not in rename:
            name = ctx.claim(index)
            if name is None and layout == CF:  # an output's channels-first twin
                name = ctx.fresh(f"{ctx.tensors[index].name}_nchw")
            if name is not None:
                rename[value] = name
    for node in ctx.nodes:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [rename.get(n, n) for n in node.output]

    interface_names = {vi.name for vi in inputs} | {vi.name for vi in outputs}
    value_info = []
    for index, have in ctx.values.items():
        for layout, value in have.items():
            final = rename.get(value, value)
            if final not in interface_names:
                shape = _shape_in(ctx.tensors[index].shape, layout)
                value_info.append(helper.make_tensor_value_info(final, TensorProto.FLOAT, shape))

    onnx_graph = helper.make_graph(
        ctx.nodes,
        graph.name,
        inputs,
        outputs,
        initializer=ctx.initializers,
        value_info=value_info,
    )
    opsets = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(
        onnx_graph,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="edgeopt",
        doc_string=f"Converted from {Path(path).name} by edgeopt.frontends.tflite",
    )
    if graph.description:
        helper.set_model_props(model, {"tflite_description": graph.description})
    return model
