"""The one place TVM's errors (and its noise) become edgeopt's, as httpx maps its errors.

TVM raises through its FFI (``TVMError``, ``ValueError``, ``RuntimeError``, with C++ traces):
`tvm_errors` wraps a block of TVM calls and `map_tvm_error` turns anything but our own errors
into one line of the right kind; `unsupported_op` reads an import failure as the operator and
node the Relax ONNX frontend cannot convert. `quiet_tvm_log` drops the lines TVM's C++ runtime
writes to the process's stderr on every library save and load ("Warning: Scope Saving:",
"Scope Loaded:", two per call, with no content and no switch to turn them off); anything else it
writes is passed through.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

from edgeopt.artifact import ModelArtifact
from edgeopt.errors import BackendError, EdgeoptError, UnsupportedOpError

__all__ = ["map_tvm_error", "quiet_tvm_log", "tvm_errors", "unsupported_op"]

_NOISE = re.compile(r"executable\.cc:\d+: Warning: Scope (Saving|Loaded):\s*$")
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


@contextlib.contextmanager
def quiet_tvm_log() -> Iterator[None]:
    """Run a block with the process's stderr (fd 2) captured; TVM's empty save/load warnings
    are dropped and every other line is written back when the block ends."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to capture (a closed fd 2): nothing to quieten
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [ln for ln in text.splitlines(keepends=True) if not _NOISE.search(ln)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
