"""OpenVINO backend: Intel's CPU compiler, with performance hints, threads and a saved blob.

OpenVINO reads the ONNX file itself (its ONNX frontend), compiles it for the ``CPU`` device
under a performance hint (``LATENCY``: one stream, all threads on one inference;
``THROUGHPUT``: several streams) and a thread count, and runs it. int8 QDQ models compile to
int8 kernels directly. OpenVINO silently runs fp32 models in bfloat16 on CPUs with AVX512-BF16
or AMX (1e-2 relative error on this machine's Zen 5); ``precision`` defaults to ``f32`` so the
compiled model matches the reference, and ``bf16`` is an explicit speed option.

``save`` writes the compiled blob (``CompiledModel.export_model``) and the options; ``load``
imports the blob in a new process without reading or compiling the ONNX model again.
``cache_dir`` turns on OpenVINO's own model cache, so a second ``compile`` of the same model on
the same machine imports the cached blob instead of compiling.

A blob is tied to the OpenVINO version and the CPU it was compiled on; importing a stale or
damaged one raises `BackendError` saying to compile again. Operators the ONNX frontend cannot
convert raise `UnsupportedOpError` naming the first one (OpenVINO reports them all at once).
The library is imported only when a model is compiled or loaded, never to list backends.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import onnx
from pydantic import Field

from edgeopt._fs import atomic_write_bytes, atomic_write_text
from edgeopt.artifact import ModelArtifact, TensorSpec
from edgeopt.backends.base import BackendOptions, check_feeds, parse_options
from edgeopt.errors import BackendError, BackendUnavailableError, UnsupportedOpError

__all__ = ["OpenVinoBackend", "OpenVinoCompiledModel", "OpenVinoOptions"]

_META = "edgeopt-openvino.json"
_BLOB = "model.blob"
_UNCONVERTED = re.compile(r"No conversion rule found for operations:\s*([^\n]+)")


class OpenVinoOptions(BackendOptions):
    """OpenVINO compile options (the ``threads`` field sets ``INFERENCE_NUM_THREADS``)."""

    hint: Literal["LATENCY", "THROUGHPUT"] = Field(
        default="LATENCY",
        description="Performance hint: LATENCY (one stream) or THROUGHPUT (several streams).",
    )
    precision: Literal["f32", "bf16", "f16", "auto"] = Field(
        default="f32",
        description="Inference precision: f32 (exact), bf16/f16 (faster where the CPU has them, "
        "about 1e-2 relative error), auto (OpenVINO's choice: bf16 on AVX512-BF16/AMX CPUs).",
    )
    device: str = Field(default="CPU", description="OpenVINO device to compile for.")
    cache_dir: str | None = Field(
        default=None,
        description="Folder for OpenVINO's compiled-model cache; None: no cache.",
    )


def _ov() -> Any:
    try:
        import openvino  # type: ignore[import-untyped]
    except ImportError as e:
        raise BackendUnavailableError("openvino", OpenVinoBackend.install_hint) from e
    return openvino


def _config(options: OpenVinoOptions) -> dict[str, Any]:
    config: dict[str, Any] = {"PERFORMANCE_HINT": options.hint}
    if options.precision != "auto":
        config["INFERENCE_PRECISION_HINT"] = options.precision
    if options.threads is not None:
        config["INFERENCE_NUM_THREADS"] = options.threads
    if options.cache_dir is not None:
        Path(options.cache_dir).mkdir(parents=True, exist_ok=True)
        config["CACHE_DIR"] = options.cache_dir
    return config


def _onnx_node_of(path: Path, op: str) -> tuple[str, str | int]:
    """The ONNX ``domain:op`` spelling and node name of an op OpenVINO reported as ``domain.op``."""
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except (OSError, ValueError) as e:  # pragma: no cover - the artifact was loaded before
        raise BackendError(f"openvino: cannot re-read {path}: {e}") from e
    for i, node in enumerate(graph.node):
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        dotted = f"{domain}.{node.op_type}" if domain else node.op_type
        if dotted == op:
            return (f"{domain}:{node.op_type}" if domain else node.op_type), node.name or i
    return op, "?"


def _read_model(core: Any, path: Path) -> Any:
    try:
        return core.read_model(str(path))
    except RuntimeError as e:
        match = _UNCONVERTED.search(str(e))
        if match:
            first = match.group(1).split(",")[0].strip()
            op, node = _onnx_node_of(path, first)
            raise UnsupportedOpError(
                op,
                node,
                str(path),
                hint="OpenVINO's ONNX frontend has no conversion for it; "
                "convert the model without it or use another backend",
            ) from e
        raise BackendError(f"openvino could not read {path}: {e}") from e


class OpenVinoCompiledModel:
    """A model compiled by OpenVINO, with one infer request and checked inputs."""

    def __init__(
        self,
        compiled: Any,
        options: OpenVinoOptions,
        inputs: tuple[TensorSpec, ...],
        outputs: tuple[TensorSpec, ...],
        source: str,
    ) -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()
        self._ports = [compiled.output(o.name) for o in outputs]
        self._source = source
        self.options = options
        self.inputs = inputs
        self.outputs = outputs

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference.

        Raises:
            InputMismatchError: Feeds that do not match the model's inputs.
            BackendError: OpenVINO failed while running.
        """
        check_feeds(self.inputs, feeds)
        try:
            result = self._request.infer(dict(feeds), share_inputs=False, share_outputs=False)
        except RuntimeError as e:
            raise BackendError(f"openvino failed running {self._source}: {e}") from e
        return {
            o.name: np.asarray(result[p]) for o, p in zip(self.outputs, self._ports, strict=True)
        }

    def save(self, directory: Path) -> Path:
        """Write the compiled blob (``model.blob``) and the options into ``directory``."""
        directory = Path(directory)
        try:
            blob = self._compiled.export_model()
        except RuntimeError as e:
            raise BackendError(f"openvino could not export the compiled {self._source}: {e}") from e
        data = blob.getvalue() if hasattr(blob, "getvalue") else bytes(blob)
        # Blob first, metadata last: a directory with metadata always has its whole blob.
        atomic_write_bytes(directory / _BLOB, data)
        meta = {
            "backend": "openvino",
            "sha256": hashlib.sha256(data).hexdigest(),
            "openvino": str(_ov().__version__),
            "options": self.options.model_dump(mode="json"),
            "inputs": [_spec_json(s) for s in self.inputs],
            "outputs": [_spec_json(s) for s in self.outputs],
            "source": self._source,
        }
        atomic_write_text(directory / _META, json.dumps(meta, indent=2))
        return directory


def _spec_json(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "dtype": spec.dtype, "shape": list(spec.shape)}


def _spec_from_json(data: Mapping[str, Any]) -> TensorSpec:
    return TensorSpec(name=str(data["name"]), dtype=str(data["dtype"]), shape=tuple(data["shape"]))


class OpenVinoBackend:
    """The OpenVINO CPU backend."""

    name: ClassVar[str] = "openvino"
    options_type: ClassVar[type[BackendOptions]] = OpenVinoOptions
    install_hint: ClassVar[str] = "pip install 'edgeopt[openvino]'"

    def is_available(self) -> bool:
        """True when the openvino package is installed (checked without importing it)."""
        return importlib.util.find_spec("openvino") is not None

    def compile(
        self, model: ModelArtifact, options: BackendOptions | Mapping[str, Any] | None = None
    ) -> OpenVinoCompiledModel:
        """Read ``model`` with OpenVINO's ONNX frontend and compile it for the device.

        Raises:
            ConfigError: Bad options.
            UnsupportedOpError: An operator OpenVINO cannot convert.
            BackendError: OpenVINO refused the model or the device.
        """
        opts = parse_options(OpenVinoOptions, options, self.name)
        core = _ov().Core()
        ov_model = _read_model(core, model.path)
        try:
            compiled = core.compile_model(ov_model, opts.device, _config(opts))
        except RuntimeError as e:
            raise BackendError(
                f"openvino could not compile {model.path} for {opts.device}: {e}"
            ) from e
        return OpenVinoCompiledModel(
            compiled, opts, model.inputs, model.outputs, source=str(model.path)
        )

    def load(self, directory: Path) -> OpenVinoCompiledModel:
        """Import a blob saved by `OpenVinoCompiledModel.save`, without compiling.

        Raises:
            BackendError: No saved OpenVINO model there, or a blob this OpenVINO cannot import
                (damaged, or from another version or CPU): compile the model again.
        """
        directory = Path(directory)
        try:
            meta = json.loads((directory / _META).read_text())
            options = OpenVinoOptions.model_validate(meta["options"])
            inputs = tuple(_spec_from_json(s) for s in meta["inputs"])
            outputs = tuple(_spec_from_json(s) for s in meta["outputs"])
            blob = (directory / _BLOB).read_bytes()
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise BackendError(
                f"{directory}: not a saved openvino model ({_META} or {_BLOB} missing or "
                f"corrupt): {e}"
            ) from e
        if hashlib.sha256(blob).hexdigest() != meta.get("sha256"):
            raise BackendError(
                f"{directory / _BLOB}: the blob is damaged or was changed (its sha256 differs "
                f"from the one saved in {_META}); compile the model again"
            )
        core = _ov().Core()
        config = _config(options)
        config.pop("CACHE_DIR", None)
        try:
            compiled = core.import_model(blob, options.device, config)
        except RuntimeError as e:
            raise BackendError(
                f"{directory / _BLOB}: openvino {_ov().__version__} cannot import this blob "
                f"(damaged, or compiled by another version or CPU); compile the model again: "
                f"{str(e).strip().splitlines()[-1]}"
            ) from e
        return OpenVinoCompiledModel(
            compiled, options, inputs, outputs, source=str(meta.get("source", directory))
        )


def reduced_precisions() -> list[str]:
    """The reduced precisions OpenVINO's CPU plugin offers on this machine: ``bf16`` (AVX512-BF16
    or AMX) and ``f16`` (AVX512-FP16), as OpenVINO itself reports them; none without OpenVINO."""
    try:
        caps = _ov().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    except Exception:  # OpenVINO missing, or no CPU plugin
        return []
    names = {str(c).upper() for c in caps}
    return [p for p, cap in (("bf16", "BF16"), ("f16", "FP16")) if cap in names]
