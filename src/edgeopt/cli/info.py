"""``edgeopt info MODEL``: inputs, outputs, op histogram, size and parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from edgeopt._api import load
from edgeopt.artifact import model_summary
from edgeopt.backends.saved import is_saved, read_saved
from edgeopt.cli._options import parse_shapes
from edgeopt.cli._output import JSON, console, emit_json, print_table
from edgeopt.errors import ConfigError

__all__ = ["LEVERS", "info"]

LEVERS = {
    "ReorderInput": "ort_layout (keeps ORT in its blocked layout)",
    "ReorderOutput": "ort_layout (keeps ORT in its blocked layout)",
    "Transpose": "ort_layout nhwc_input_conv; convert --layout nchw",
    "Conv": "quantize (int8), prune_structured, OpenVINO, tuned TVM",
    "FusedConv": "quantize (int8), prune_structured, OpenVINO, tuned TVM",
    "Resize": "TVM's hand-scheduled upsampling; ort_layout resize_conv_swap",
    "Upsample": "TVM's hand-scheduled upsampling; ort_layout resize_conv_swap",
    "ConvTranspose": "TVM's hand-scheduled transposed convolution",
    "MatMul": "quantize (dynamic int8)",
    "Gemm": "quantize (dynamic int8)",
}
"""Which pass or backend addresses an ORT kernel op, for ``info --profile``."""


def _io_table(described: dict[str, Any]) -> None:
    """The inputs and outputs of a model summary or an artifact's description."""
    print_table(
        "inputs / outputs",
        ("kind", "name", "dtype", "shape"),
        [
            (kind, t["name"], t["dtype"], str(tuple(t["shape"])))
            for kind in ("input", "output")
            for t in described[f"{kind}s"]
        ],
    )


def info(
    model: Path = typer.Argument(
        ..., help="Model: a zoo name, .onnx/.tflite/.pt2 file, or an `edgeopt compile` folder."
    ),
    json_out: str | None = JSON,
    profile: bool = typer.Option(
        False,
        "--profile",
        help="Also time each operator type on ONNX Runtime (its profiler), or each kernel of "
        "a TVM artifact (the Relax VM's instrument hook).",
    ),
    shape: list[str] = typer.Option(
        [], "--shape", help="Size of an input with dynamic dimensions: NAME=1x3x256x256."
    ),
) -> None:
    """Show a model's interface, operators, size and parameter count (or an artifact's)."""
    if is_saved(model):
        meta = read_saved(model)
        kernels = _kernel_profile(model, meta, shape) if profile else None
        emit_json(json_out, json.dumps({**meta, "profile_ms": kernels} if profile else meta))
        if json_out == "-":
            return
        console.print(
            f"[bold]{model}[/bold]: compiled for {meta['backend']} (target {meta['target']}) "
            f"from {meta['source']['path']} (sha256 {meta['source']['sha256'][:16]})"
        )
        console.print(f"options {meta['options']}; versions {meta['versions']}")
        _io_table(meta)
        if kernels is not None:
            _profile_table(
                "TVM profile (ms per inference, 50 runs, random inputs; each call includes "
                "~1 us of the hook)",
                "kernel",
                kernels,
                {},
            )
        return
    artifact = load(model)
    summary = model_summary(artifact)
    if profile:
        from edgeopt.backends.base import feeds_for
        from edgeopt.backends.onnxruntime import profile_ops

        ops = profile_ops(artifact, feeds_for(artifact.inputs, parse_shapes(shape)))
        summary["profile_ms"] = {op: ms for op, (_, ms) in ops.items()}
    emit_json(json_out, json.dumps(summary))
    if json_out == "-":
        return
    console.print(
        f"[bold]{summary['path']}[/bold]  {summary['producer']}  opsets {summary['opsets']}"
    )
    console.print(
        f"size {summary['size_bytes'] / 1024:.1f} KB, {summary['parameters']:,} parameters, "
        f"{summary['nodes']} nodes, sha256 {summary['sha256'][:16]}"
    )
    _io_table(summary)
    print_table("operators", ("op", "count"), [(k, str(v)) for k, v in summary["ops"].items()])
    if profile:
        _profile_table(
            "ONNX Runtime profile (after its fusions; ms per inference, 50 runs, random inputs)",
            "kernel op",
            ops,
            LEVERS,
        )


def _kernel_profile(model: Path, meta: dict[str, Any], shape: list[str]) -> dict[str, Any]:
    """Per-kernel times of a TVM artifact, as ``{kernel: [calls, ms]}``.

    Raises:
        ConfigError: An artifact of another backend.
    """
    from edgeopt.backends.base import feeds_for
    from edgeopt.backends.saved import load_saved
    from edgeopt.backends.tvm import TvmCompiledModel

    compiled = load_saved(model)
    if not isinstance(compiled, TvmCompiledModel):
        raise ConfigError(
            f"{model}: --profile on an artifact needs a TVM one (this is {meta['backend']}); "
            "for ONNX Runtime's per-operator profile give the .onnx model"
        )
    feeds = feeds_for(compiled.inputs, parse_shapes(shape))
    return {k: [n, ms] for k, (n, ms) in compiled.profile(feeds).items()}


def _profile_table(title: str, what: str, rows: dict[str, Any], levers: dict[str, str]) -> None:
    """Times per kernel or op, with their share of the sum."""
    total = sum(ms for _, ms in rows.values()) or 1.0
    print_table(
        title,
        (what, "calls", "ms", "share", "what addresses it"),
        [
            (k, str(n), f"{ms:.3f}", f"{ms / total:.0%}", levers.get(k, ""))
            for k, (n, ms) in rows.items()
        ],
    )
