"""The backend contract: compile a model artifact into something that runs.

A `Backend` turns a `ModelArtifact` into a `CompiledModel` under typed options; the compiled
model runs feeds, and saves/loads its artifact (ORT's optimized model, TVM's shared library,
OpenVINO's blob) so a later process skips compilation. `check_feeds` gives every backend the
same input checking, with messages that name the input and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

import numpy as np
import psutil
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeopt.artifact import ModelArtifact, TensorSpec
from edgeopt.errors import ConfigError, InputMismatchError, describe_validation

__all__ = [
    "Backend",
    "BackendOptions",
    "CompiledModel",
    "check_feeds",
    "feeds_for",
    "parse_options",
    "random_feeds",
]


_O = TypeVar("_O", bound=BaseModel)


class BackendOptions(BaseModel):
    """Options every backend understands; backends subclass it with their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threads: int | None = Field(
        default=None, ge=1, le=256, description="Worker threads for one inference; None: default."
    )


@runtime_checkable
class CompiledModel(Protocol):
    """A model ready to run on one backend."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference; returns outputs by name."""
        ...

    def save(self, directory: Path) -> Path:
        """Write the compiled artifact and its metadata into ``directory``; returns it."""
        ...


@runtime_checkable
class Backend(Protocol):
    """A compiler or runtime that turns an ONNX artifact into a `CompiledModel`."""

    name: ClassVar[str]
    options_type: ClassVar[type[BackendOptions]]
    install_hint: ClassVar[str]

    def is_available(self) -> bool:
        """True when the backend's library imports here."""
        ...

    def compile(
        self, model: ModelArtifact, options: BackendOptions | Mapping[str, Any] | None = None
    ) -> CompiledModel:
        """Compile ``model``; raises BackendError or UnsupportedOpError on failure."""
        ...

    def load(self, directory: Path) -> CompiledModel:
        """Load a model saved by ``CompiledModel.save``."""
        ...


def parse_options(
    options_type: type[_O],
    options: BaseModel | Mapping[str, Any] | None,
    backend: str,
    kind: str = "backend",
) -> _O:
    """Validate ``options`` against a plugin's options model (``backend.options_type``).

    Args:
        options_type: The options model.
        options: The options as given (a model, a mapping, or None for the defaults).
        backend: The plugin's name, for the message.
        kind: What the plugin is (``backend``, ``pass``), for the message.

    Raises:
        ConfigError: An unknown option or a value of the wrong type, named in the message.
    """
    if isinstance(options, options_type):
        return options
    raw = options.model_dump(exclude_unset=True) if isinstance(options, BaseModel) else options
    try:
        return options_type.model_validate(dict(raw or {}))
    except ValidationError as e:
        problems = describe_validation(e)
        raise ConfigError(f"bad options for {kind} {backend!r}: {problems}") from e


def check_feeds(specs: Sequence[TensorSpec], feeds: Mapping[str, np.ndarray]) -> None:
    """Check feeds against a model's inputs: names, dtypes, ranks and static dimensions.

    Raises:
        InputMismatchError: What is wrong, for which input, and what was expected.
    """
    # Plain loops: this runs before every inference (0.003 ms a call; set arithmetic and
    # generators took 0.04).
    if len(feeds) != len(specs) or any(s.name not in feeds for s in specs):
        expected = {s.name for s in specs}
        missing, extra = sorted(expected - set(feeds)), sorted(set(feeds) - expected)
        raise InputMismatchError(
            f"feeds do not match the model's inputs: missing {missing}, unexpected {extra}; "
            f"the model takes {sorted(expected)}"
        )
    for spec in specs:
        name = spec.name
        value = feeds[name]
        if not isinstance(value, np.ndarray):
            value = np.asarray(value)
        if value.dtype.name != spec.dtype:
            raise InputMismatchError(
                f"input {name!r} has dtype {value.dtype}, the model wants {spec.dtype}; "
                f"convert it with .astype(np.{spec.dtype})"
            )
        shape = value.shape
        ok = len(shape) == len(spec.shape)
        if ok:
            for want, got in zip(spec.shape, shape, strict=True):
                if isinstance(want, int) and want != got:
                    ok = False
                    break
        if not ok:
            raise InputMismatchError(
                f"input {name!r} has shape {tuple(shape)}, the model wants {tuple(spec.shape)}"
            )


def random_feeds(
    specs: Sequence[TensorSpec], seed: int = 0, dims: Mapping[str, int] | None = None
) -> dict[str, np.ndarray]:
    """Reproducible random feeds for benchmarking a model.

    Args:
        specs: The model's inputs.
        seed: Random seed.
        dims: Values for symbolic dimensions (others become 1).
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    available = psutil.virtual_memory().available
    for spec in specs:
        shape = spec.concrete_shape(dims)
        dtype = np.dtype(spec.dtype)
        need = math.prod(shape) * max(dtype.itemsize, 4)
        if need > available // 2:
            raise InputMismatchError(
                f"input {spec.name!r} of shape {tuple(shape)} needs {need / 2**30:.1f} GiB of "
                f"memory, more than half of the {available / 2**30:.1f} GiB available: give "
                "the model a smaller input shape"
            )
        if dtype.kind == "f":
            feeds[spec.name] = rng.random(shape, dtype=np.float32).astype(dtype)
        elif dtype.kind in "iu":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            feeds[spec.name] = np.zeros(shape, dtype=dtype)
    return feeds


def feeds_for(
    specs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]] | None = None, seed: int = 0
) -> dict[str, np.ndarray]:
    """Random feeds for benchmarking, every dimension known: from the model or ``shapes``.

    Raises:
        ConfigError: An input with a dynamic dimension and no shape given (named, with the
            flag that fixes it), or a given shape whose rank or static sizes do not fit.
    """
    shapes = shapes or {}
    unknown = sorted(set(shapes) - {s.name for s in specs})
    if unknown:
        raise ConfigError(
            f"--shape names no input of the model: {unknown}; inputs: {[s.name for s in specs]}"
        )
    fixed = []
    for spec in specs:
        if spec.name in shapes:
            want = tuple(int(d) for d in shapes[spec.name])
            if len(want) != len(spec.shape) or any(
                isinstance(d, int) and d != w for d, w in zip(spec.shape, want, strict=False)
            ):
                raise ConfigError(
                    f"--shape {spec.name}={'x'.join(map(str, want))} does not fit the input's "
                    f"shape {list(spec.shape)}"
                )
            fixed.append(TensorSpec(spec.name, spec.dtype, want))
            continue
        dynamic = [(i, d) for i, d in enumerate(spec.shape) if not isinstance(d, int)]
        if dynamic:
            axis, dim = dynamic[0]
            example = "x".join(str(d) if isinstance(d, int) else "1" for d in spec.shape)
            raise ConfigError(
                f"input {spec.name!r} has a dynamic dimension ({dim or '?'} at axis {axis}) in "
                f"{list(spec.shape)}: give its size with --shape, e.g. --shape "
                f"{spec.name}={example} with your sizes for the dynamic axes"
            )
        fixed.append(spec)
    return random_feeds(fixed, seed=seed)
