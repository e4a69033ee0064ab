"""Dynamic dimensions made static, once, before any pass or backend sees the model.

Exported models often leave the batch, the image size or the audio length open (``N``,
``-1``, ``?``). Quantization calibration, pruning, fidelity, OpenVINO and TVM all need one
size, and a size picked silently (1) can make a model output nothing at all (an OCR
detector at 1x3x1x1). So the size is always said: ``--shape NAME=1x3x640x640`` on every
command, or the default shape a model card gives; an input still dynamic after both is an
error that names the input and the flag.

`with_shapes` writes a copy of the model with those inputs' dimensions fixed (cached by the
model's sha256 and the shapes, so every command and worker gets the same file) and returns
it; the graph itself is unchanged, the runtimes specialize it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import onnx

from edgeopt._fs import atomic_path, atomic_write_text, cache_dir
from edgeopt.artifact import ModelArtifact, TensorSpec, load_onnx
from edgeopt.errors import ConfigError

__all__ = ["check_shapes", "dynamic_inputs", "with_shapes"]

logger = logging.getLogger(__name__)


def dynamic_inputs(specs: Sequence[TensorSpec]) -> list[TensorSpec]:
    """The inputs with at least one dimension not known as a size."""
    return [s for s in specs if not s.is_static]


def check_shapes(
    specs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]], flag: str = "--shape"
) -> dict[str, tuple[int, ...]]:
    """``shapes`` checked against the model's inputs: known names, same rank, static sizes kept.

    Raises:
        ConfigError: A name that is no input, or a shape that does not fit (one line each,
            with the input's own shape).
    """
    by_name = {s.name: s for s in specs}
    out: dict[str, tuple[int, ...]] = {}
    for name, dims in shapes.items():
        spec = by_name.get(name)
        if spec is None:
            raise ConfigError(
                f"{flag} {name}=...: the model has no input {name!r}; inputs: {sorted(by_name)}"
            )
        want = tuple(int(d) for d in dims)
        fits = len(want) == len(spec.shape) and all(
            w >= 1 and (not isinstance(d, int) or d == w)
            for d, w in zip(spec.shape, want, strict=False)
        )
        if not fits:
            have = "x".join(str(d) if isinstance(d, int) else "N" for d in spec.shape)
            raise ConfigError(
                f"{flag} {name}={'x'.join(map(str, want))} does not fit input {name!r} of shape "
                f"{have}: give one positive size per axis, the fixed ones as they are"
            )
        out[name] = want
    return out


def with_shapes(
    model: ModelArtifact,
    shapes: Mapping[str, Sequence[int]] | None = None,
    defaults: Mapping[str, Sequence[int]] | None = None,
) -> ModelArtifact:
    """The model with its dynamic input dimensions fixed; the model itself when none is.

    Args:
        model: The model.
        shapes: The user's sizes (``--shape``), by input name; they win.
        defaults: A card's default sizes, used for inputs the user did not size and that
            are dynamic in the graph.

    Raises:
        ConfigError: A bad shape (see `check_shapes`).
        WriteError: The cache cannot be written.
    """
    chosen = check_shapes(model.inputs, shapes or {})
    dynamic = {s.name for s in dynamic_inputs(model.inputs)}
    for name, dims in check_shapes(model.inputs, defaults or {}, "the card's shape").items():
        if name in dynamic and name not in chosen:
            logger.info(
                "input %r: dynamic dimensions set to %s (the model card's shape; --shape "
                "changes it)",
                name,
                "x".join(map(str, dims)),
            )
            chosen[name] = dims
    by_name = {s.name: s for s in model.inputs}
    chosen = {n: d for n, d in chosen.items() if by_name[n].shape != d}
    if not chosen:
        return model
    key = json.dumps({"model": model.sha256(), "shapes": sorted(chosen.items())})
    target = cache_dir() / "shaped" / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.onnx"
    refused = target.with_suffix(".refused")
    if target.is_file():
        cached = load_onnx(target)
        if all(s.shape == chosen.get(s.name, s.shape) for s in cached.inputs):
            return cached
    if refused.is_file():
        return model
    proto = model.proto()
    for value in proto.graph.input:
        if value.name in chosen:
            dims = value.type.tensor_type.shape.dim
            for d, size in zip(dims, chosen[value.name], strict=True):
                d.Clear()
                d.dim_value = size
    try:
        _write_checked(model, proto, target, refused, chosen)
    except _Refused:
        return model
    return load_onnx(target)


def _write_checked(
    model: ModelArtifact,
    proto: onnx.ModelProto,
    target: Path,
    refused: Path,
    chosen: Mapping[str, tuple[int, ...]],
) -> None:
    """Write the static copy; raise `_Refused` (nothing written) when ORT refuses it."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(proto.SerializeToString())
        load_onnx(tmp)  # the checker accepts the written file before it is renamed in
        why = _refusal(tmp)
        if why is not None:
            # A graph whose untaken branches assume other sizes (Silero VAD's 8 kHz branch
            # under a 16 kHz window) fails type inference once its inputs are static: it
            # stays dynamic, and the sizes are fed, not written.
            logger.warning(
                "%s: kept its dynamic input shapes: with %s fixed, ONNX Runtime refuses it "
                "(%s); inputs are fed at those sizes",
                model.path,
                ", ".join(f"{n}={'x'.join(map(str, d))}" for n, d in chosen.items()),
                why,
            )
            atomic_write_text(refused, why)
            raise _Refused


class _Refused(Exception):
    """Leaves `atomic_path` without renaming the refused file into place."""


def _refusal(path: Path) -> str | None:
    """Why ONNX Runtime will not load the static copy, or None when it does."""
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:
        return str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
    return None
