"""PyTorch import: an ``nn.Module``, a TorchScript file or an ExportedProgram, to ONNX.

Built on ``torch.onnx.export`` (the maintained exporter; torch is the optional ``torch`` extra,
installed as ``torch==2.13.0``). Files are opened without unpickling arbitrary objects:
``.pt2`` through ``torch.export.load`` and ``.pt``/``.pth`` as TorchScript through
``torch.jit.load``; a pickled whole module is refused, since loading one runs arbitrary code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeopt._fs import atomic_path
from edgeopt.errors import BackendUnavailableError, ConfigError, EdgeoptError, ModelLoadError

__all__ = ["TORCH_SUFFIXES", "convert_torch"]

TORCH_SUFFIXES = (".pt", ".pth", ".pt2")
_HINT = "pip install torch==2.13.0 (a CPU build)"


def _torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise BackendUnavailableError("torch", _HINT) from e
    return torch


def _load_module(torch: Any, path: Path) -> Any:
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    try:
        if path.suffix == ".pt2":
            return torch.export.load(str(path))
        return torch.jit.load(str(path), map_location="cpu")
    except Exception as e:  # torch raises RuntimeError, ValueError, zipfile errors, ...
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
                    dynamo=not isinstance(model, torch.jit.ScriptModule),
                    external_data=False,
                    verbose=False,
                )
        except Exception as e:
            raise EdgeoptError(f"torch.onnx.export failed for {type(model).__name__}: {e}") from e
    return Path(output)
