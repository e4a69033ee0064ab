"""LiteRT backend (TensorFlow Lite with XNNPACK): the field's own runtime, as a reference.

It runs the *original* ``.tflite`` file of a model that edgeopt imported from TFLite, so the
comparison with ONNX Runtime and the compilers is like for like: the same weights, the
runtime MediaPipe itself ships. The TFLite importer stamps each converted ONNX model with its
source's path and sha256 (``edgeopt.source_*`` metadata); ``compile`` finds the file there,
checks the checksum, and loads it with ``ai_edge_litert``'s interpreter, whose default
XNNPACK delegate also runs MediaPipe's custom ``Convolution2DTransposeBias``. Models that did
not come from TFLite, or whose interface was changed (``layout="nchw"``), are refused with the
reason.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgeopt._fs import atomic_path, atomic_write_text, recorded_source
from edgeopt.artifact import ModelArtifact, TensorSpec
from edgeopt.backends.base import BackendOptions, check_feeds, parse_options
from edgeopt.errors import BackendError, BackendUnavailableError

__all__ = ["LiteRtBackend", "LiteRtCompiledModel"]

_META = "edgeopt-litert.json"


def _interpreter(path: Path, threads: int | None) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]
    except ImportError as e:
        raise BackendUnavailableError("litert", LiteRtBackend.install_hint) from e
    try:
        interp = Interpreter(model_path=str(path), num_threads=threads or 1)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise BackendError(f"LiteRT could not load {path}: {e}") from e
    return interp


def _source(model: ModelArtifact) -> Path:
    props = model.metadata.get("props", {})
    if props.get("edgeopt.source_format") != "tflite":
        raise BackendError(
            f"litert runs TFLite models: {model.path} was not imported from a .tflite file "
            "(convert one with `edgeopt convert MODEL.tflite`)"
        )
    digest = props.get("edgeopt.source_sha256", "")
    name = props.get("edgeopt.source_name") or Path(props.get("edgeopt.source_path", "")).name
    # Beside the model, where this machine converted it, or (older models) the stored path.
    places = [model.path.parent / name, recorded_source(digest)]
    places.append(Path(props["edgeopt.source_path"]) if "edgeopt.source_path" in props else None)
    seen = [p for p in places if p is not None and p.is_file()]
    for path in seen:
        if hashlib.sha256(path.read_bytes()).hexdigest() == digest:
            return path
    if seen:
        raise BackendError(f"litert: {seen[0]} changed since {model.path} was converted from it")
    raise BackendError(
        f"litert: the TFLite source of {model.path} ({name}, sha256 {digest[:16]}) is not beside "
        "it nor where this machine converted it: put the .tflite file next to the model"
    )


class LiteRtCompiledModel:
    """A LiteRT interpreter over the original ``.tflite`` file."""

    def __init__(self, path: Path, threads: int | None, inputs: tuple[TensorSpec, ...]) -> None:
        self._path = path
        self.threads = threads
        self._interp = _interpreter(path, threads)
        details = self._interp.get_input_details()
        self._outputs = self._interp.get_output_details()
        self.inputs = tuple(
            TensorSpec(d["name"], str(np.dtype(d["dtype"])), tuple(int(v) for v in d["shape"]))
            for d in details
        )
        self.outputs = tuple(
            TensorSpec(d["name"], str(np.dtype(d["dtype"])), tuple(int(v) for v in d["shape"]))
            for d in self._outputs
        )
        if inputs and [(s.name, s.shape) for s in inputs] != [
            (s.name, s.shape) for s in self.inputs
        ]:
            raise BackendError(
                f"litert: the ONNX model's inputs {[(s.name, s.shape) for s in inputs]} differ "
                f"from its TFLite source's {[(s.name, s.shape) for s in self.inputs]} "
                "(converted with another layout?)"
            )
        self._index = {d["name"]: d["index"] for d in details}

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference (outputs are copies: the interpreter reuses its buffers)."""
        check_feeds(self.inputs, feeds)
        for name, value in feeds.items():
            self._interp.set_tensor(self._index[name], value)
        self._interp.invoke()
        return {d["name"]: self._interp.get_tensor(d["index"]).copy() for d in self._outputs}

    def save(self, directory: Path) -> Path:
        """Copy the ``.tflite`` file and the thread setting into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with atomic_path(directory / "model.tflite") as tmp:
            shutil.copyfile(self._path, tmp)
        meta = {"backend": "litert", "threads": self.threads}
        atomic_write_text(directory / _META, json.dumps(meta, indent=2))
        return directory


class LiteRtOptions(BackendOptions):
    """LiteRT options: ``threads`` only (XNNPACK is LiteRT's default CPU delegate)."""


class LiteRtBackend:
    """LiteRT (TensorFlow Lite) with XNNPACK, for models imported from ``.tflite``."""

    name: ClassVar[str] = "litert"
    options_type: ClassVar[type[BackendOptions]] = LiteRtOptions
    install_hint: ClassVar[str] = "pip install 'edgeopt[litert]'"

    def is_available(self) -> bool:
        """True when ``ai_edge_litert`` is installed (checked without importing it)."""
        return importlib.util.find_spec("ai_edge_litert") is not None

    def compile(
        self, model: ModelArtifact, options: BackendOptions | Mapping[str, Any] | None = None
    ) -> LiteRtCompiledModel:
        """Load the model's original ``.tflite`` into an interpreter.

        Raises:
            BackendError: No TFLite source, a changed source, or LiteRT refused it.
        """
        opts = parse_options(LiteRtOptions, options, self.name)
        return LiteRtCompiledModel(_source(model), opts.threads, model.inputs)

    def load(self, directory: Path) -> LiteRtCompiledModel:
        """Load what `LiteRtCompiledModel.save` wrote."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / _META).read_text())
        except (OSError, ValueError) as e:
            raise BackendError(f"{directory}: not a saved litert model ({_META}): {e}") from e
        return LiteRtCompiledModel(directory / "model.tflite", meta.get("threads"), ())
