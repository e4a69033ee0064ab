"""``edgeopt optimize MODEL``: run a recipe (or inline flags) and print what each pass did.

``edgeopt optimize model.onnx --recipe r.yaml -o out/`` or, without a file,
``edgeopt optimize model.onnx --quantize static --prune 0.3 -o out/``. Writes ``out/model.onnx``
and ``out/report.json`` / ``out/report.md``; prints one row per pass: status, size, fidelity.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgeopt._api import load
from edgeopt.cli._output import console, print_table
from edgeopt.errors import ConfigError
from edgeopt.pipeline import run_pipeline
from edgeopt.recipe import DataSettings, load_recipe, recipe_from_flags

__all__ = ["optimize"]


def optimize(
    model: Path = typer.Argument(..., help="Model file (.onnx or .tflite)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (created if missing)."),
    recipe: Path | None = typer.Option(None, "--recipe", "-r", help="YAML recipe file."),
    simplify: bool = typer.Option(False, "--simplify", help="Run the simplify pass."),
    quantize: str | None = typer.Option(
        None, "--quantize", help="int8 quantization: 'dynamic' or 'static'."
    ),
    iou_bound: float | None = typer.Option(
        None, "--iou-bound", help="Accuracy-aware quantization: keep layers fp32 until IoU >= this."
    ),
    prune: float | None = typer.Option(
        None, "--prune", help="Unstructured magnitude pruning: fraction of weights zeroed."
    ),
    prune_structured: float | None = typer.Option(
        None, "--prune-structured", help="Structured channel pruning: fraction of channels."
    ),
    fp16: bool = typer.Option(False, "--fp16", help="Store weights as float16."),
    ort_layout: bool = typer.Option(
        False, "--ort-layout", help="Exact rewrites that keep ONNX Runtime's blocked layout."
    ),
    data: str = typer.Option(
        "auto", "--data", help="Calibration/evaluation images: auto, builtin, a folder, a video."
    ),
) -> None:
    """Optimize MODEL with a recipe or inline flags; write the model and a report."""
    flags = (
        simplify or quantize or prune is not None or prune_structured is not None or fp16
    ) or ort_layout
    if recipe is not None and flags:
        raise ConfigError("give either --recipe or inline pass flags, not both")
    if quantize is not None and quantize not in ("dynamic", "static"):
        raise ConfigError(f"--quantize must be 'dynamic' or 'static', got {quantize!r}")
    artifact = load(model)
    if recipe is not None:
        plan = load_recipe(recipe)
    else:
        plan = recipe_from_flags(
            simplify=simplify,
            quantize=quantize,
            prune=prune,
            prune_structured=prune_structured,
            fp16=fp16,
            ort_layout=ort_layout,
            iou_bound=iou_bound,
            data=DataSettings(source=data),
        )
    with console.status("optimizing") as status:
        report = run_pipeline(
            artifact,
            plan,
            out,
            progress=lambda i, n, name: status.update(f"pass {i}/{n}: {name}"),
        )
    rows = []
    for i, s in enumerate(report.steps, 1):
        f = s.fidelity or {}
        rows.append(
            [
                str(i),
                s.name,
                "applied" if s.applied else f"skipped: {s.skipped}" if s.skipped else "no change",
                f"{s.size_bytes / 1024:.1f}",
                f"{f['iou']:.4f}" if "iou" in f else "-",
                f"{f['cosine']:.5f}" if "cosine" in f else "-",
                f"{f['max_abs']:.4g}" if "max_abs" in f else "-",
                f"{s.seconds:.1f}",
            ]
        )
    print_table(
        f"{model.name}: {report.size_before / 1024:.1f} KiB -> {report.size_after / 1024:.1f} KiB",
        ["#", "pass", "status", "KiB", "IoU", "cosine", "max abs", "s"],
        rows,
    )
    console.print(f"wrote {report.output}, {out / 'report.json'}, {out / 'report.md'}")
