"""``edgeopt optimize MODEL``: run a recipe (or inline flags) and print what each pass did.

``edgeopt optimize model.onnx --recipe r.yaml -o out/`` or, without a file,
``edgeopt optimize model.onnx --quantize static --prune 0.3 -o out/``. Writes ``out/model.onnx``
and ``out/report.json`` / ``out/report.md``; prints one row per pass: status, size, fidelity.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer

from edgeopt._api import load
from edgeopt.cli import _interface
from edgeopt.cli._output import JSON, emit_json, human, print_table, steps
from edgeopt.errors import ConfigError
from edgeopt.pipeline import run_pipeline
from edgeopt.recipe import DataSettings, load_recipe, recipe_from_flags

__all__ = ["optimize"]


def optimize(
    model: str = typer.Argument(..., help="Model: a zoo name, .onnx, .tflite, .pt2."),
    out: Path = typer.Option(
        ..., "--output", "-o", "--out", help="Output folder (created if missing)."
    ),
    recipe: Path | None = typer.Option(None, "--recipe", "-r", help="YAML recipe file."),
    simplify: bool = typer.Option(False, "--simplify", help="Run the simplify pass."),
    quantize: str | None = typer.Option(
        None, "--quantize", help="int8 quantization: 'dynamic' or 'static'."
    ),
    bound: str | None = typer.Option(
        None,
        "--bound",
        help="Accuracy-aware quantization: layers stay fp32 until this fidelity bound holds "
        "(the syntax of auto's --bound: iou>=0.98, cosine>=0.999, max_abs<=1e-3).",
    ),
    iou_bound: float | None = typer.Option(
        None, "--iou-bound", hidden=True, help="Same as --bound iou>=VALUE (older name)."
    ),
    prune: float | None = typer.Option(
        None,
        "--prune-unstructured",
        "--prune",
        help="Unstructured magnitude pruning (prune_unstructured): fraction of weights zeroed.",
    ),
    prune_structured: float | None = typer.Option(
        None,
        "--prune-structured",
        help="Structured channel pruning (prune_structured): fraction of channels removed.",
    ),
    fp16: bool = typer.Option(False, "--fp16", help="Store weights as float16."),
    ort_layout: bool = typer.Option(
        False, "--ort-layout", help="Exact rewrites that keep ONNX Runtime's blocked layout."
    ),
    data: str = typer.Option(
        "auto",
        "--data",
        help="Calibration/evaluation images: auto, builtin, a folder, a video (split in two "
        "disjoint halves).",
    ),
    shape: list[str] = _interface.SHAPE,
    card: Path | None = _interface.CARD,
    input_mean: str | None = _interface.MEAN,
    input_std: str | None = _interface.STD,
    input_order: str | None = _interface.ORDER,
    output_activation: str | None = _interface.ACTIVATION,
    person_channel: int | None = _interface.PERSON,
    json_out: str | None = JSON,
) -> None:
    """Optimize MODEL with a recipe or inline flags; write the model and a report."""
    flags = (
        simplify or quantize or prune is not None or prune_structured is not None or fp16
    ) or ort_layout
    if recipe is not None and flags:
        raise ConfigError("give either --recipe or inline pass flags, not both")
    if bound is not None and iou_bound is not None:
        raise ConfigError("give --bound or its older form --iou-bound, not both")
    if quantize is not None and quantize not in ("dynamic", "static"):
        raise ConfigError(f"--quantize must be 'dynamic' or 'static', got {quantize!r}")
    fields = _interface.overrides(
        card, input_mean, input_std, input_order, output_activation, person_channel
    )
    artifact = load(model, _interface.shapes(shape))
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
            bound=bound if iou_bound is None else f"iou>={iou_bound}",
            data=DataSettings(source=data),
        )
    with steps("optimizing") as note:
        report = run_pipeline(
            artifact,
            plan,
            out,
            progress=lambda i, n, name: note(f"pass {i}/{n}: {name}"),
            interface=fields,
            card=_interface.card_extras(card),
        )
    emit_json(json_out, (out / "report.json").read_text())
    console = human(json_out)
    rows = []
    for i, s in enumerate(report.steps, 1):
        f = s.fidelity or {}
        rows.append(
            [
                str(i),
                s.name,
                _status(s.applied, s.skipped, s.details),
                f"{s.size_bytes / 1024:.1f}",
                _num(f.get(report.metric), ".4f"),
                _num(f.get("snr"), ".1f"),
                _num(f.get("max_abs"), ".4g"),
                f"{s.seconds:.1f}",
            ]
        )
    print_table(
        f"{Path(model).name}: {report.size_before / 1024:.1f} KiB -> "
        f"{report.size_after / 1024:.1f} KiB",
        ["#", "pass", "status", "KiB", report.metric, "SNR dB", "max abs", "s"],
        rows,
        console,
    )
    console.print(f"evaluation: {report.data['evaluation']}")
    console.print(f"calibration: {report.data['calibration']}")
    for warning in report.warnings:
        console.print(f"warning: {warning}")
    console.print(f"wrote {report.output}, {out / 'report.json'}, {out / 'report.md'}")


def _status(applied: bool, skipped: str | None, details: Mapping[str, Any]) -> str:
    """A step's status with every reason: parts skipped inside a pass, models normalized."""
    text = "applied" if applied else f"skipped: {skipped}" if skipped else "no change"
    parts = details.get("skipped")
    parts = parts if isinstance(parts, dict) else {}
    notes = [f"{k} skipped: {v}" for k, v in parts.items()]
    notes += [n for n in details.get("normalized", []) if isinstance(n, str)]
    return text + "".join(f"; {n}" for n in notes)


def _num(value: object, fmt: str) -> str:
    """A metric for the table; "-" where it does not apply (None or NaN)."""
    if not isinstance(value, int | float) or value != value:
        return "-"
    return format(value, fmt)
