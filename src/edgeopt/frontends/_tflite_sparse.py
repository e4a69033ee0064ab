"""TFLite sparse constant tensors, made dense (``SparsityParameters``: dense and CSR levels).

A sparse tensor's buffer holds only its stored values, in *traversal order*: the tensor's
dimensions, plus one extra dimension per blocked dimension (``block_map``), visited in
``traversal_order``; each level is either DENSE (every index ``0..dense_size``) or SPARSE_CSR
(``array_segments[parent]..array_segments[parent + 1]`` of ``array_indices``). A stored value's
position in dimension ``d`` is its level index, times the block size, plus the index in
``d``'s block dimension when ``d`` is blocked. This is the algorithm of TFLite's own
``FormatConverter::SparseToDense``; it is written here because no maintained package
densifies TFLite tensors without TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
import tflite

__all__ = ["densify"]

_INDEX_VECTORS = {
    tflite.SparseIndexVector.Int32Vector: tflite.Int32Vector,
    tflite.SparseIndexVector.Uint16Vector: tflite.Uint16Vector,
    tflite.SparseIndexVector.Uint8Vector: tflite.Uint8Vector,
}


def _vector(kind: int, table: Any) -> npt.NDArray[np.int64]:
    cls = _INDEX_VECTORS.get(kind)
    if cls is None or table is None:
        raise ValueError(f"sparse index vector of type {kind}")
    vec = cls()
    vec.Init(table.Bytes, table.Pos)
    values = vec.ValuesAsNumpy()
    return np.zeros(0, np.int64) if isinstance(values, int) else values.astype(np.int64)


def densify(values: npt.NDArray[Any], shape: tuple[int, ...], sparsity: Any) -> npt.NDArray[Any]:
    """The dense tensor of ``shape`` that ``values`` (the stored entries) and ``sparsity`` give.

    Raises:
        ValueError: Sparsity parameters that do not fit the shape or the values (a corrupt
            or unsupported file); the caller turns it into a ModelLoadError.
    """
    order = [int(v) for v in np.atleast_1d(sparsity.TraversalOrderAsNumpy())]
    block_map = [] if sparsity.BlockMapIsNone() else [int(v) for v in sparsity.BlockMapAsNumpy()]
    rank = len(shape)
    levels: list[tuple[int, npt.NDArray[np.int64] | None, npt.NDArray[np.int64] | None]] = []
    for i in range(sparsity.DimMetadataLength()):
        meta = sparsity.DimMetadata(i)
        if meta.Format() == tflite.DimensionType.DENSE:
            levels.append((int(meta.DenseSize()), None, None))
        else:
            segments = _vector(meta.ArraySegmentsType(), meta.ArraySegments())
            indices = _vector(meta.ArrayIndicesType(), meta.ArrayIndices())
            levels.append((0, segments, indices))
    n = rank + len(block_map)
    if sorted(order) != list(range(n)) or len(levels) != n:
        raise ValueError(f"traversal order {order} does not fit rank {rank} + {len(block_map)}")
    block_size = {}
    for j, dim in enumerate(block_map):
        level = order.index(rank + j)
        block_size[dim] = levels[level][0]
        if not 0 <= dim < rank or block_size[dim] < 1 or shape[dim] % block_size[dim]:
            raise ValueError(f"block {j} of size {block_size[dim]} does not fit {list(shape)}")
    dense = np.zeros(shape, values.dtype)
    flat = values.reshape(-1)
    coord = [0] * n
    stored = 0

    def place() -> None:
        nonlocal stored
        if stored >= flat.size:
            raise ValueError("fewer stored values than the sparsity parameters address")
        where = []
        for d in range(rank):
            if d in block_size:
                j = block_map.index(d)
                where.append(coord[d] * block_size[d] + coord[rank + j])
            else:
                where.append(coord[d])
        dense[tuple(where)] = flat[stored]
        stored += 1

    def visit(level: int, parent: int) -> None:
        if level == n:
            place()
            return
        size, segments, indices = levels[level]
        dim = order[level]
        if segments is None:
            for i in range(size):
                coord[dim] = i
                visit(level + 1, parent * size + i)
            return
        if indices is None or parent + 1 >= segments.size:
            raise ValueError("array_segments too short for its level")
        for k in range(int(segments[parent]), int(segments[parent + 1])):
            coord[dim] = int(indices[k])
            visit(level + 1, k)

    if math.prod(shape) > 0:
        visit(0, 0)
    if stored != flat.size:
        raise ValueError(f"{flat.size} stored values, the sparsity parameters address {stored}")
    return dense
