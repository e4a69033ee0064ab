"""``edgeopt.load``: any model a command takes (a zoo name, .onnx, .tflite, PyTorch) as ONNX.

One loader below the API, the pipeline and the CLI, so every entry point accepts the same
inputs: a zoo name is pulled and verified, other formats are converted once and cached, and
the card's default shapes fill the dynamic dimensions the caller did not size.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from edgeopt.artifact import ModelArtifact, load_onnx
from edgeopt.card import card_of
from edgeopt.shapes import with_shapes

__all__ = ["load"]


def load(
    path: str | os.PathLike[str], shapes: Mapping[str, Sequence[int]] | None = None
) -> ModelArtifact:
    """Open a model file safely and read its interface; other formats are converted to ONNX.

    Args:
        path: An ``.onnx`` file, a ``.tflite`` or PyTorch file (converted once, cached), or a
            zoo name such as ``mediapipe-selfie`` (pulled, verified, cached).
        shapes: Sizes of inputs with dynamic dimensions (``--shape``); the model's card gives
            defaults for the others (see `edgeopt.shapes.with_shapes`).

    Raises:
        ModelLoadError: Missing, truncated, corrupt or unsafe file.
        UnsupportedOpError: A TFLite operator the importer cannot convert.
        ConfigError: A shape that does not fit the model.
    """
    from edgeopt import zoo

    if str(path) in zoo.ZOO and not Path(path).exists():
        path = zoo.pull(str(path))
    if str(path).lower().endswith(".onnx"):
        artifact = load_onnx(path)
    else:
        from edgeopt.convert import convert

        artifact = convert(path)
    card = card_of(artifact)
    return with_shapes(artifact, shapes, card.shapes if card is not None else None)
