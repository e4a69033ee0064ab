"""``edgeopt info MODEL``: inputs, outputs, op histogram, size and parameters."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgeopt._api import load
from edgeopt.artifact import model_summary
from edgeopt.backends.saved import is_saved, read_saved
from edgeopt.cli._output import console, print_table

__all__ = ["info"]


def info(
    model: Path = typer.Argument(
        ..., help="Model: a zoo name, .onnx/.tflite/.pt2 file, or an `edgeopt compile` folder."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Show a model's interface, operators, size and parameter count (or an artifact's)."""
    if is_saved(model):
        meta = read_saved(model)
        if as_json:
            console.print_json(json.dumps(meta))
            return
        console.print(
            f"[bold]{model}[/bold]: compiled for {meta['backend']} (target {meta['target']}) "
            f"from {meta['source']['path']} (sha256 {meta['source']['sha256'][:16]})"
        )
        console.print(f"options {meta['options']}; versions {meta['versions']}")
        print_table(
            "inputs / outputs",
            ("kind", "name", "dtype", "shape"),
            [
                (kind, t["name"], t["dtype"], str(tuple(t["shape"])))
                for kind in ("input", "output")
                for t in meta[f"{kind}s"]
            ],
        )
        return
    summary = model_summary(load(model))
    if as_json:
        console.print_json(json.dumps(summary))
        return
    console.print(
        f"[bold]{summary['path']}[/bold]  {summary['producer']}  opsets {summary['opsets']}"
    )
    console.print(
        f"size {summary['size_bytes'] / 1024:.1f} KB, {summary['parameters']:,} parameters, "
        f"{summary['nodes']} nodes, sha256 {summary['sha256'][:16]}"
    )
    print_table(
        "inputs / outputs",
        ("kind", "name", "dtype", "shape"),
        [
            (kind, t["name"], t["dtype"], str(tuple(t["shape"])))
            for kind in ("input", "output")
            for t in summary[f"{kind}s"]
        ],
    )
    print_table("operators", ("op", "count"), [(k, str(v)) for k, v in summary["ops"].items()])
