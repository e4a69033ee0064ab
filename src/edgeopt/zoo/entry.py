"""A zoo entry: where a known model comes from, its checksum, and its card."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from edgeopt.card import ModelCard
from edgeopt.interface import ModelInterface

__all__ = ["Source", "ZooModel"]

Source = Literal["tflite", "onnx"]
"""The source file's format: ``tflite`` is converted to ONNX, ``onnx`` is taken as it is."""


@dataclass(frozen=True)
class ZooModel:
    """A known model: provenance, checksum and card.

    Attributes:
        name: The zoo name (``edgeopt models pull NAME``).
        description: One line for ``edgeopt models list``.
        license: SPDX id of the weights' license.
        package: The registry package that ships the file (a pinned pip requirement).
        member: The file's path inside that package's wheel.
        family: Sub-folder of the offline models folder.
        sha256: The source file's sha256.
        card: What the graph cannot say: interface, task, shapes, values, audio, state.
        source: ``tflite`` (converted to ONNX) or ``onnx`` (taken as it is).
        platform_wheel: The package has only platform wheels: fetch the fixed cp311
            manylinux one, whatever the running Python and OS.
    """

    name: str
    description: str
    license: str
    package: str
    member: str
    family: str
    sha256: str
    card: ModelCard
    source: Source = "tflite"
    platform_wheel: bool = False

    @property
    def filename(self) -> str:
        """The source file's name (in the cache and the offline folder)."""
        return PurePosixPath(self.member).name

    @property
    def interface(self) -> ModelInterface | None:
        """The image interface from the card; None for a model without an image input."""
        return self.card.interface

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of each image, audio and dynamic input, as the card gives it."""
        shapes: dict[str, tuple[int, ...]] = {}
        face = self.card.interface
        if face is not None:
            h, w = face.input_size
            shapes[face.input_name] = (1, h, w, 3) if face.layout == "nhwc" else (1, 3, h, w)
        audio = self.card.audio
        if audio is not None:
            shapes[audio.input_name] = (1, audio.context + audio.window)
        shapes.update(self.card.shapes)
        return shapes

    def describe(self) -> dict[str, Any]:
        """The entry as JSON-ready data (``edgeopt models info``)."""
        return {
            "name": self.name,
            "description": self.description,
            "license": self.license,
            "package": self.package,
            "member": self.member,
            "family": self.family,
            "filename": self.filename,
            "sha256": self.sha256,
            "source": self.source,
            "inputs": {k: list(v) for k, v in self.input_shapes.items()},
            "card": json.loads(self.card.to_json()),
        }
