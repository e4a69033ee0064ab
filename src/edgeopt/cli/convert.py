"""``edgeopt convert IN -o OUT.onnx``: import a model into ONNX."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer

from edgeopt.artifact import model_summary
from edgeopt.cli._output import JSON, emit_json, human
from edgeopt.convert import convert as convert_model
from edgeopt.errors import ConfigError

__all__ = ["convert"]


def convert(
    source: Path = typer.Argument(..., help="Model file: .onnx, .tflite, .pt or .pt2."),
    output: Path = typer.Option(..., "--output", "-o", help="The ONNX file to write."),
    layout: Literal["nhwc", "nchw"] = typer.Option(
        "nhwc",
        "--layout",
        case_sensitive=False,
        help="TFLite: keep the NHWC interface or expose NCHW.",
    ),
    input_shape: list[str] = typer.Option(
        [],
        "--input-shape",
        metavar="SHAPE",
        help="PyTorch: an input's shape, 1x3x224x224 (or 1,3,224,224); repeat per input.",
    ),
    json_out: str | None = JSON,
) -> None:
    """Convert a model (.onnx, .tflite, .pt TorchScript, .pt2) to ONNX, checked and reloaded."""
    try:
        shapes = [tuple(int(d) for d in s.replace(",", "x").split("x")) for s in input_shape]
    except ValueError as e:
        raise ConfigError(f"--input-shape wants a shape like 1x3x224x224, got {input_shape}") from e
    artifact = convert_model(source, output, layout=layout, input_shapes=shapes)
    inputs = ", ".join(f"{s.name}{list(s.shape)}" for s in artifact.inputs)
    emit_json(json_out, json.dumps(model_summary(artifact), indent=2))
    human(json_out).print(
        f"wrote {artifact.path} ({artifact.size_bytes / 1024:.1f} KB; inputs {inputs})"
    )
