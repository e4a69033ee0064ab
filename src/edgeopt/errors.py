"""The exception tree of edgeopt: one root, a subclass per kind of failure.

Every error edgeopt raises on purpose derives from :class:`EdgeoptError`, so callers
(and the CLI, which turns it into one line and exit code 1) need catch only one type.
Messages name the object, the problem and the fix.

::

    EdgeoptError
    ├── ModelLoadError            a model file is missing, truncated, corrupt or not a model
    │   └── UnsafeModelError      a model that reaches outside its folder (external data paths)
    ├── UnsupportedOpError        an operator a frontend or backend cannot handle
    ├── InputMismatchError        feeds that do not match the model's inputs (name, shape, dtype)
    ├── BackendUnavailableError   a backend whose library is not installed (with the install hint)
    ├── BackendError              a backend failed to compile, run, save or load
    ├── ConfigError               a bad option, recipe or argument
    ├── WriteError                an output could not be written (disk full, permission, ...)
    ├── PluginError               an unknown or broken plugin name
    ├── BenchmarkError            a benchmark worker failed
    └── ModelFetchError           a model could not be fetched or failed its checksum
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "BenchmarkError",
    "ConfigError",
    "EdgeoptError",
    "InputMismatchError",
    "ModelFetchError",
    "ModelLoadError",
    "PluginError",
    "UnsafeModelError",
    "UnsupportedOpError",
    "WriteError",
    "describe_validation",
]


class EdgeoptError(Exception):
    """Root of every error edgeopt raises on purpose."""


class ModelLoadError(EdgeoptError):
    """A model file is missing, truncated, corrupt, or not a model of the expected format."""


class UnsafeModelError(ModelLoadError):
    """A model refers to data outside its own folder (path traversal) or is otherwise hostile."""


class UnsupportedOpError(EdgeoptError):
    """An operator that a frontend or a backend cannot convert or run.

    Attributes:
        op: The operator's type, e.g. ``"CUSTOM:Foo"`` or ``"NonMaxSuppression"``.
        node: Where it is: the node's name or index.
        model: The model it was found in, when known.
    """

    def __init__(self, op: str, node: str | int, model: str | None = None, hint: str = "") -> None:
        self.op = op
        self.node = node
        self.model = model
        where = f" in {model}" if model else ""
        fix = hint or "convert the model without this operator, or add a converter for it"
        super().__init__(f"unsupported operator {op!r} at node {node!r}{where}: {fix}")


class InputMismatchError(EdgeoptError):
    """Feeds that do not match a model's declared inputs."""


class BackendUnavailableError(EdgeoptError):
    """A backend whose library is not installed here.

    Attributes:
        backend: The backend's registered name.
        hint: How to install it.
    """

    def __init__(self, backend: str, hint: str) -> None:
        self.backend = backend
        self.hint = hint
        super().__init__(f"backend {backend!r} is not available: {hint}")


class BackendError(EdgeoptError):
    """A backend failed to compile, run, save or load a model."""


class ConfigError(EdgeoptError):
    """A bad option value, recipe or command-line argument."""


class WriteError(EdgeoptError):
    """An output could not be written (no space, no permission, read-only); the old file stays."""


class PluginError(EdgeoptError):
    """An unknown plugin name, or a plugin that fails to import."""


class BenchmarkError(EdgeoptError):
    """A benchmark could not be run (a worker failed or timed out)."""


class ModelFetchError(EdgeoptError):
    """A model could not be downloaded, extracted, or failed its sha256 check."""


def describe_validation(
    error: ValidationError,
    location: Callable[[tuple[int | str, ...]], str] | None = None,
) -> str:
    """One line for a pydantic ``ValidationError``: ``field: problem; field: problem``.

    The one place typed options, recipes, cards and run configurations turn into our message.

    Args:
        error: The validation error.
        location: How to write a field's location (default: dotted, ``passes.1.options``).
    """
    parts = []
    for err in error.errors():
        loc = tuple(err["loc"])
        where = location(loc) if location else ".".join(str(p) for p in loc)
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
