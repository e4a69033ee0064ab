"""``edgeopt models list|pull|info``: the model zoo."""

from __future__ import annotations

import json

import typer

from edgeopt import zoo
from edgeopt.cli._output import console, guard, print_table

__all__ = ["app"]

app = typer.Typer(
    help="Known models: list, pull (download, verify, convert), info.", no_args_is_help=True
)


def _task(entry: zoo.ZooModel) -> str:
    return entry.card.task.kind if entry.card.task is not None else "generic"


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
                "task": _task(m),
                "inputs": {k: list(v) for k, v in m.input_shapes.items()},
                "interface": m.interface.model_dump(mode="json") if m.interface else None,
            }
            for m in zoo.ZOO.values()
        ]
        typer.echo(json.dumps(entries, indent=2))
        return
    print_table(
        "edgeopt model zoo",
        ("name", "task", "input", "license", "description"),
        [
            (
                m.name,
                _task(m),
                " ".join("x".join(map(str, s)) for s in m.input_shapes.values()),
                m.license,
                m.description,
            )
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
    """Show where a model comes from, its checksum and its card (interface, task, inputs)."""
    console.print_json(json.dumps(zoo.get(name).describe()))
