"""Import any supported model format into ONNX, edgeopt's exchange format.

``.onnx`` files are checked and copied; ``.tflite`` files go through the TFLite frontend (no
TensorFlow needed); PyTorch modules through ``torch.onnx.export`` (the optional ``torch``
extra). Conversions without an explicit output land in the cache, keyed by the source's
sha256, so loading the same ``.tflite`` twice converts once.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import onnx

from edgeopt._fs import atomic_path, cache_dir, check_distinct, read_verified, record_sha256
from edgeopt.artifact import ModelArtifact, load_onnx
from edgeopt.errors import ConfigError, ModelLoadError

__all__ = ["FORMATS", "convert", "converter_hash"]

FORMATS = {
    ".onnx": "ONNX",
    ".tflite": "TensorFlow Lite",
    ".pt": "TorchScript",
    ".pth": "TorchScript",
    ".pt2": "PyTorch ExportedProgram",
}
"""File suffixes edgeopt can import, and the format's name."""


def converter_hash() -> str:
    """A hash of the TFLite frontend's source: cached conversions are redone when it changes."""
    from edgeopt.frontends import tflite

    h = hashlib.sha256()
    for path in sorted(Path(tflite.__file__).parent.glob("*tflite*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _default_output(src: Path) -> Path:
    h = hashlib.sha256(src.read_bytes())
    if src.suffix.lower() == ".tflite":
        h.update(converter_hash().encode())
    return cache_dir() / "converted" / f"{src.stem}-{h.hexdigest()[:20]}.onnx"


def convert(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    layout: str = "nhwc",
    input_shapes: Sequence[Sequence[int]] = (),
) -> ModelArtifact:
    """Convert a model file to ONNX and load the result.

    Args:
        source: A ``.onnx``, ``.tflite``, or PyTorch (``.pt`` TorchScript, ``.pt2``) file.
        output: Where to write the ONNX file; default: the cache.
        layout: For TFLite: keep the NHWC interface (``"nhwc"``) or expose NCHW (``"nchw"``).
        input_shapes: For PyTorch files: one shape per input (they carry none).

    Returns:
        The converted model's artifact.

    Raises:
        ConfigError: An unknown format. ModelLoadError: a bad source file.
        UnsupportedOpError: An operator the frontend cannot convert.
    """
    src = Path(source)
    if src.is_dir():
        raise ModelLoadError(
            f"{src}: a folder, not a model file; a compiled artifact folder (from `edgeopt "
            "compile -o`) opens with edgeopt.load_compiled(), `edgeopt bench` or `edgeopt info`"
        )
    if not src.is_file():
        raise ModelLoadError(f"{src}: no such model file")
    suffix = src.suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(f"{k} ({v})" for k, v in FORMATS.items())
        raise ConfigError(f"{src}: unknown model format {suffix!r}; edgeopt imports {known}")
    if layout not in ("nhwc", "nchw"):
        raise ConfigError(f"layout must be 'nhwc' or 'nchw', not {layout!r}")
    if output is not None:
        check_distinct(src, output)
    if suffix == ".onnx":
        artifact = load_onnx(src)
        if output is None:
            return artifact
        with atomic_path(output, suffix=".onnx") as tmp:
            shutil.copyfile(src, tmp)
        return load_onnx(output)
    if suffix in (".pt", ".pth", ".pt2"):
        from edgeopt.frontends.torch import convert_torch

        if not input_shapes:
            raise ConfigError(f"{src}: PyTorch files carry no input shape; give --input-shape")
        target = Path(output) if output is not None else _default_output(src)
        return load_onnx(convert_torch(src, target, input_shapes))
    from edgeopt.frontends.tflite import convert_tflite

    target = Path(output) if output is not None else _default_output(src)
    if output is None and layout != "nhwc":
        target = target.with_name(f"{target.stem}-{layout}.onnx")
    if output is None and read_verified(target):
        return load_onnx(target)
    model = convert_tflite(src, layout="nchw" if layout == "nchw" else "nhwc")
    with atomic_path(target, suffix=".onnx") as tmp:
        onnx.save(model, str(tmp))
        load_onnx(tmp)
    if output is None:
        record_sha256(target)
    return load_onnx(target)
