"""``edgeopt convert IN -o OUT.onnx``: import a model into ONNX."""

from __future__ import annotations

from pathlib import Path

import typer

from edgeopt.cli._output import console
from edgeopt.convert import convert as convert_model
from edgeopt.errors import ConfigError

__all__ = ["convert"]


def convert(
    source: Path = typer.Argument(..., help="Model file: .onnx, .tflite, .pt or .pt2."),
    output: Path = typer.Option(..., "--output", "-o", help="The ONNX file to write."),
    layout: str = typer.Option("nhwc", help="TFLite: keep the NHWC interface or expose NCHW."),
    input_shape: list[str] = typer.Option(
        [], "--input-shape", help="PyTorch: an input's shape, e.g. 1,3,224,224; repeat per input."
    ),
) -> None:
    """Convert a model (.onnx, .tflite, .pt TorchScript, .pt2) to ONNX, checked and reloaded."""
    try:
        shapes = [tuple(int(d) for d in s.split(",")) for s in input_shape]
    except ValueError as e:
        raise ConfigError(f"--input-shape wants comma-separated integers, got {input_shape}") from e
    artifact = convert_model(source, output, layout=layout, input_shapes=shapes)
    inputs = ", ".join(f"{s.name}{list(s.shape)}" for s in artifact.inputs)
    console.print(f"wrote {artifact.path} ({artifact.size_bytes / 1024:.1f} KB; inputs {inputs})")
