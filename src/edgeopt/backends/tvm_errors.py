"""The one place TVM's errors become edgeopt's, as httpx maps its transport errors.

TVM raises through its FFI (``TVMError``, ``ValueError``, ``RuntimeError``, with C++ traces):
`tvm_errors` wraps a block of TVM calls and `map_tvm_error` turns anything but our own errors
into one line of the right kind; `unsupported_op` reads an import failure as the operator and
node the Relax ONNX frontend cannot convert.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from edgeopt.artifact import ModelArtifact
from edgeopt.errors import BackendError, EdgeoptError, UnsupportedOpError

__all__ = ["map_tvm_error", "tvm_errors", "unsupported_op"]

_NOT_SUPPORTED = re.compile(r"operators are not supported for frontend ONNX:\s*([^\n]+)")


def map_tvm_error(
    error: BaseException, what: str, kind: type[EdgeoptError] = BackendError
) -> EdgeoptError:
    """The one place TVM's errors (raised through its FFI as TVMError, ValueError, ...) become
    ours, as httpx maps its transport errors: ours pass through, the rest become ``kind``."""
    if isinstance(error, EdgeoptError):
        return error
    first = str(error).strip().splitlines()
    return kind(f"{what}: {first[-1] if first else type(error).__name__}")


@contextlib.contextmanager
def tvm_errors(what: str, kind: type[EdgeoptError] = BackendError) -> Iterator[None]:
    """Run a block of TVM calls; any error but ours leaves as one `map_tvm_error`."""
    try:
        yield
    except Exception as e:
        raise map_tvm_error(e, what, kind) from e


def unsupported_op(e: Exception, model: ModelArtifact) -> UnsupportedOpError | None:
    """The `UnsupportedOpError` an import failure means (the op, its node), or None."""
    match = _NOT_SUPPORTED.search(str(e))
    if not match:
        return None
    op = match.group(1).split(",")[0].strip()
    node: str | int = "?"
    graph = model.proto().graph
    for i, n in enumerate(graph.node):
        if n.op_type == op:
            node = n.name or i
            if n.domain not in ("", "ai.onnx"):
                op = f"{n.domain}:{n.op_type}"
            break
    return UnsupportedOpError(
        op,
        node,
        str(model.path),
        hint="TVM's Relax ONNX frontend has no converter for it; "
        "convert the model without it or use another backend",
    )
