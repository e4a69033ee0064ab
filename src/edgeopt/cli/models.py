"""``edgeopt models list|pull|info``: the model zoo."""

from __future__ import annotations

import dataclasses
import json

import typer

from edgeopt import zoo
from edgeopt.cli._output import console, guard, print_table

__all__ = ["app"]

app = typer.Typer(
    help="Known models: list, pull (download, verify, convert), info.", no_args_is_help=True
)


@app.command("list")
@guard
def list_models(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the known models."""
    if as_json:
        entries = [
            {
                "name": m.name,
                "description": m.description,
                "license": m.license,
                "sha256": m.sha256,
                "interface": m.interface.model_dump(mode="json"),
            }
            for m in zoo.ZOO.values()
        ]
        typer.echo(json.dumps(entries, indent=2))
        return
    print_table(
        "edgeopt model zoo",
        ("name", "input", "license", "description"),
        [
            (m.name, "x".join(map(str, m.input_size)), m.license, m.description)
            for m in zoo.ZOO.values()
        ],
    )


@app.command("pull")
@guard
def pull(name: str = typer.Argument(..., help="Zoo name, e.g. mediapipe-selfie.")) -> None:
    """Fetch a model, verify its sha256, convert it to ONNX and cache it; prints the path."""
    with console.status(f"pulling {name}"):
        path = zoo.pull(name)
    console.print(str(path))


@app.command("info")
@guard
def info(name: str = typer.Argument(..., help="Zoo name.")) -> None:
    """Show where a model comes from, its checksum, interface and preprocessing."""
    console.print_json(json.dumps(dataclasses.asdict(zoo.get(name))))
