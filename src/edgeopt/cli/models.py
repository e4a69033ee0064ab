"""``edgeopt models list|pull|info``: the model zoo."""

from __future__ import annotations

import json

import typer

from edgeopt import zoo
from edgeopt.cli._output import JSON, console, emit_json, guard, human, print_table, steps

__all__ = ["app"]

app = typer.Typer(
    help="Known models: list, pull (download, verify, convert), info.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _task(entry: zoo.ZooModel) -> str:
    return entry.card.task.kind if entry.card.task is not None else "generic"


@app.command("list")
@guard
def list_models(json_out: str | None = JSON) -> None:
    """List the known models."""
    if json_out is not None:
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
        emit_json(json_out, json.dumps(entries, indent=2))
        if json_out == "-":
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
        human(json_out),
    )


@app.command("pull")
@guard
def pull(name: str = typer.Argument(..., help="Zoo name, e.g. mediapipe-selfie.")) -> None:
    """Fetch a model, verify its sha256, convert it to ONNX and cache it; prints the path."""
    with steps(f"pulling {name}") as note:
        path = zoo.pull(name)
        note(f"{path} ({path.stat().st_size / 2**20:.1f} MiB, sha256 verified)")
    console.print(str(path))


@app.command("info")
@guard
def info(name: str = typer.Argument(..., help="Zoo name."), json_out: str | None = JSON) -> None:
    """Show where a model comes from, its checksum and its card (interface, task, inputs)."""
    text = json.dumps(zoo.get(name).describe(), indent=2)
    emit_json(json_out, text)
    if json_out != "-":
        human(json_out).print_json(text)
