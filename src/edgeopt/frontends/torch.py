"""PyTorch import: an ``nn.Module``, a TorchScript file or an ExportedProgram, to ONNX.

Built on ``torch.onnx.export`` (the maintained exporter; torch is the optional ``torch`` extra,
installed as ``torch==2.13.0``). Files are opened without unpickling arbitrary objects:
``.pt2`` through ``torch.export.load`` and ``.pt``/``.pth`` as TorchScript through
``torch.jit.load``; a pickled whole module is refused, since loading one runs arbitrary code.

``torch.export.load`` itself is not safe: it unpickles (``weights_only=False``) any weight or
constant whose config entry says ``use_pickle``, custom and opaque objects, sample inputs that
fail a weights-only load, and it runs AOTInductor libraries. So a ``.pt2`` is read into memory
and scanned first (`check_pt2_archive`): only the entries a plain ``torch.export.save`` writes
are allowed, every payload must be a raw tensor, the sample inputs must pass torch's
weights-only unpickler; torch then loads those same scanned bytes, never the file again.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeopt._fs import atomic_path
from edgeopt.errors import (
    BackendUnavailableError,
    ConfigError,
    EdgeoptError,
    ModelLoadError,
    UnsafeModelError,
)

__all__ = ["TORCH_SUFFIXES", "check_pt2_archive", "convert_torch"]

TORCH_SUFFIXES = (".pt", ".pth", ".pt2")
_HINT = "pip install 'edgeopt[torch]' (torch 2.13.0, a CPU build)"


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise BackendUnavailableError("torch", _HINT) from e
    return torch


# What a plain torch.export.save writes, below the archive's root folder.
_PT2_ALLOWED = re.compile(
    r"(archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"
    r"|models/[\w.-]+\.json|data/weights/[\w.-]+|data/constants/[\w.-]+"
    r"|data/sample_inputs/[\w.-]+\.pt|extra/[\w.-]+)"
)


def _refuse(path: Path, why: str) -> UnsafeModelError:
    return UnsafeModelError(
        f"{path}: refused, {why}; loading it would unpickle arbitrary objects (run code). "
        "Re-export the model with torch.export.save from a plain nn.Module, or pass the "
        "nn.Module itself to convert_torch"
    )


def check_pt2_archive(torch: Any, path: Path, data: bytes) -> None:
    """Refuse a ``.pt2`` archive that would make ``torch.export.load`` run code.

    Raises:
        ModelLoadError: Not a zip archive. UnsafeModelError: an entry a plain export does
            not write, a pickled or non-tensor payload, or sample inputs that are not tensors.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = archive.namelist()
    except (zipfile.BadZipFile, ValueError) as e:
        raise ModelLoadError(f"{path}: not a .pt2 archive (not a zip file): {e}") from e
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or f"{next(iter(roots))}/archive_format" not in names:
        raise _refuse(path, "not a torch.export archive of the current format (no archive_format)")
    root = next(iter(roots))
    for name in names:
        rest = name[len(root) + 1 :]
        if not _PT2_ALLOWED.fullmatch(rest):
            raise _refuse(path, f"it holds {name!r}, which a plain torch.export.save never writes")
    for name in names:
        if not name.endswith("_config.json"):
            continue
        try:
            config = json.loads(archive.read(name)).get("config", {})
            entries = list(config.items())
        except (ValueError, AttributeError) as e:
            raise ModelLoadError(f"{path}: {name} is not valid JSON: {e}") from e
        for key, entry in entries:
            if not isinstance(entry, dict) or entry.get("use_pickle") is not False:
                raise _refuse(path, f"{key!r} in {name} is stored as a pickle")
            file = str(entry.get("path_name", ""))
            if entry.get("tensor_meta") is None or not file.startswith(("weight_", "tensor_")):
                raise _refuse(path, f"{key!r} in {name} is not a plain tensor ({file!r})")
    for name in names:
        if "/data/sample_inputs/" in name:
            try:
                torch.load(io.BytesIO(archive.read(name)), weights_only=True)
            except Exception as e:  # torch's weights-only unpickler refused it
                raise _refuse(path, f"its sample inputs {name} are not plain tensors") from e


def _load_module(torch: Any, path: Path) -> Any:
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    if path.suffix == ".pt2":
        data = path.read_bytes()
        check_pt2_archive(torch, path, data)
    try:
        if path.suffix == ".pt2":
            return torch.export.load(io.BytesIO(data))
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # torch raises RuntimeError, ValueError, zipfile errors, ...
        if isinstance(e, UnsafeModelError):
            raise
        raise ModelLoadError(
            f"{path}: not a TorchScript (.pt) or ExportedProgram (.pt2) file: {e}; save the "
            "model with torch.jit.script(...).save() or torch.export.save(), or pass the "
            "nn.Module itself to convert_torch"
        ) from e


def convert_torch(
    model: Any,
    output: str | os.PathLike[str],
    input_shapes: Sequence[Sequence[int]],
    *,
    input_names: Sequence[str] | None = None,
    opset: int = 18,
) -> Path:
    """Export a PyTorch model to an ONNX file.

    Args:
        model: An ``nn.Module``, or the path of a TorchScript / ExportedProgram file.
        output: The ONNX file to write (atomically).
        input_shapes: One shape per input; inputs are float32.
        input_names: Names for the graph inputs (default ``input``, ``input_1``, ...).
        opset: ONNX opset to export to.

    Returns:
        The written path.

    Raises:
        BackendUnavailableError: torch is not installed. ModelLoadError: a bad file.
        ConfigError: No input shapes. EdgeoptError: the exporter failed (its reason given).
    """
    torch = _torch()
    if not input_shapes or any(len(s) == 0 or min(s) < 1 for s in input_shapes):
        raise ConfigError(
            f"give one positive input shape per input, e.g. 1,3,224,224; got {input_shapes}"
        )
    if isinstance(model, str | os.PathLike):
        model = _load_module(torch, Path(model))
    if isinstance(model, torch.nn.Module):
        model.eval()
    elif not isinstance(model, torch.export.ExportedProgram):
        raise ConfigError(
            f"expected an nn.Module, an ExportedProgram or a model file, got {type(model).__name__}"
        )
    args = tuple(torch.zeros(tuple(s), dtype=torch.float32) for s in input_shapes)
    names = list(input_names or [f"input{'' if i == 0 else f'_{i}'}" for i in range(len(args))])
    with atomic_path(output, suffix=".onnx") as tmp:
        try:
            with torch.no_grad():
                torch.onnx.export(
                    model,
                    args,
                    str(tmp),
                    input_names=names,
                    opset_version=opset,
                    # The dynamo exporter writes opset 18+ only; older opsets (tf2onnx-era
                    # runtimes) need the TorchScript exporter.
                    dynamo=opset >= 18 and not isinstance(model, torch.jit.ScriptModule),
                    external_data=False,
                    verbose=False,
                )
        except Exception as e:
            raise EdgeoptError(f"torch.onnx.export failed for {type(model).__name__}: {e}") from e
    return Path(output)
