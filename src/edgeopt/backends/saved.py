"""Compiled-artifact folders: what `edgeopt compile` writes and every command can load.

A folder holds the backend's own saved model (ORT's optimized ``model.onnx``, TVM's shared
library, OpenVINO's blob, written by `CompiledModel.save`, each file's sha256 recorded) and
``edgeopt-artifact.json``, which describes it: the backend, its options, the target, the source
model's path and sha256, library versions, the inputs and outputs, and the model's image
interface when it has one. `load_saved` reads that file and hands the folder to the backend's
``load``, which needs only the runtime (TVM's runtime, not its compiler).

Loading a compiled artifact runs its code (a shared library, a compiled blob): load only
artifacts you made or trust. Every file is checked against the sha256 recorded when it was
written, and a path outside the folder is refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import tarfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from edgeopt._fs import atomic_write_text
from edgeopt.artifact import ModelArtifact, TensorSpec
from edgeopt.backends.base import CompiledModel
from edgeopt.errors import BackendError, ConfigError, ModelLoadError
from edgeopt.registry import get_backend

__all__ = ["META", "elf_machine", "is_saved", "load_saved", "read_saved", "save_compiled"]

META = "edgeopt-artifact.json"
SCHEMA = "edgeopt.artifact/1"
_PACKAGES = {
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "tvm": "apache-tvm",
    "litert": "ai-edge-litert",
}
_ELF_MACHINES = {3: "x86", 62: "x86_64", 40: "arm", 183: "aarch64", 243: "riscv"}


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _spec(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "dtype": spec.dtype, "shape": list(spec.shape)}


def is_saved(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a compiled-artifact folder."""
    return (Path(path) / META).is_file()


def _record(value: Any) -> dict[str, Any] | None:
    """A dataclass instance (a backend's report) as a dict, or None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return None


def save_compiled(
    compiled: CompiledModel,
    backend: str,
    source: ModelArtifact,
    directory: str | os.PathLike[str],
    interface: Mapping[str, Any] | None = None,
) -> Path:
    """Save ``compiled`` into ``directory`` with its self-description.

    Args:
        compiled: What ``backend.compile`` returned.
        backend: The backend's registered name.
        source: The ONNX model it was compiled from.
        directory: The artifact folder (created).
        interface: The model's image interface (``ModelInterface.model_dump``), if any.

    Raises:
        BackendError: The backend cannot save this model. WriteError: the folder is not
            writable.
    """
    folder = Path(directory)
    compiled.save(folder)  # the backend's files first, the description last
    options = getattr(compiled, "options", None)
    target = getattr(compiled, "target", None)
    tuning = getattr(compiled, "tuning", None)  # TVM: what this compile's tuning did
    meta = {
        "schema": SCHEMA,
        "backend": backend,
        "options": options.model_dump(mode="json") if options is not None else {},
        "target": dict(target) if isinstance(target, Mapping) else "host",
        "source": {"path": str(source.path), "sha256": source.sha256()},
        "versions": {
            "edgeopt": _version("edgeopt"),
            _PACKAGES.get(backend, backend): _version(_PACKAGES.get(backend, backend)),
        },
        "machine": platform.machine(),
        "inputs": [
            {"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in compiled.inputs
        ],
        "outputs": [
            {"name": s.name, "dtype": s.dtype, "shape": list(s.shape)} for s in compiled.outputs
        ],
        "interface": dict(interface) if interface else None,
        "tuning": _record(tuning),
    }
    atomic_write_text(folder / META, json.dumps(meta, indent=2))
    return folder


def read_saved(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The description of a compiled-artifact folder.

    Raises:
        ModelLoadError: No ``edgeopt-artifact.json`` there, or an unreadable one.
    """
    path = Path(directory) / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            f"{directory}: not a compiled artifact ({META} missing or corrupt: {e}); make one "
            "with `edgeopt compile MODEL -b BACKEND -o DIR`"
        ) from e
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA or "backend" not in meta:
        raise ModelLoadError(f"{path}: not an edgeopt artifact description ({SCHEMA})")
    return meta


def load_saved(directory: str | os.PathLike[str]) -> CompiledModel:
    """Load a compiled-artifact folder with its backend's runtime (no compiler needed).

    Raises:
        ModelLoadError: Not an artifact folder. BackendError: the backend refuses it (damaged,
            another version or machine). BackendUnavailableError: its runtime is missing.
    """
    meta = read_saved(directory)
    backend = get_backend(str(meta["backend"]))
    if not backend.is_available():
        from edgeopt.errors import BackendUnavailableError

        raise BackendUnavailableError(backend.name, backend.install_hint)
    loaded: CompiledModel = backend.load(Path(directory))
    return loaded


def elf_machine(library: str | os.PathLike[str]) -> str:
    """The machine an ELF shared library or the objects of a ``.tar`` are built for.

    Raises:
        BackendError: Not an ELF file (nor a tar of them).
    """
    path = Path(library)
    if path.suffix == ".tar":
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                f = tar.extractfile(member) if member.isfile() else None
                if f is not None:
                    head = f.read(20)
                    if head[:4] == b"\x7fELF":
                        return _machine_of(head, f"{path}:{member.name}")
        raise BackendError(f"{path}: no ELF object inside")
    with path.open("rb") as f:
        return _machine_of(f.read(20), str(path))


def _machine_of(head: bytes, where: str) -> str:
    if head[:4] != b"\x7fELF":
        raise BackendError(f"{where}: not an ELF file")
    machine = int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")
    return _ELF_MACHINES.get(machine, f"machine {machine}")


def check_not_dir(path: str | os.PathLike[str]) -> None:
    """Refuse an artifact folder where an ONNX model file is needed (one clear line)."""
    if is_saved(path):
        raise ConfigError(
            f"{path} is a compiled artifact, not a model file: benchmark it as it is, or give "
            "the model it was compiled from"
        )
