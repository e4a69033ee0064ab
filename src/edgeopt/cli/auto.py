"""``edgeopt auto MODEL --bound 'iou>=0.98' --budget 15m``: the fastest faithful variant."""

from __future__ import annotations

from pathlib import Path

import typer

from edgeopt.auto import CANDIDATES, AutoResult, AutoSettings, parse_bound, search, summary_rows
from edgeopt.cli import _interface
from edgeopt.cli._grammar import DURATION, EXIT_PARTIAL, parse_duration
from edgeopt.cli._options import split_options
from edgeopt.cli._output import JSON, emit_json, human, print_table, steps
from edgeopt.registry import get_backend

__all__ = ["auto"]


def auto(
    model: str = typer.Argument(..., help="Model: a zoo name, .onnx, .tflite, .pt2."),
    out: Path = typer.Option(
        Path("auto-out"), "--output", "-o", "--out", help="Output folder (created if missing)."
    ),
    bound: str | None = typer.Option(
        None,
        "--bound",
        help="Fidelity bound, e.g. iou>=0.98, f1>=0.95, nme<=0.01, snr>=30 (default: the "
        "model's task's).",
    ),
    budget: str = typer.Option(
        "15m", "--budget", metavar=DURATION, help="Search budget, a hard cap: 90s, 15m, 1h."
    ),
    candidate: list[str] = typer.Option(
        [], "--candidate", help=f"Recipes to try (default all): {', '.join(CANDIDATES)}."
    ),
    backend: list[str] = typer.Option([], "--backend", "-b", help="Backends (default: all)."),
    threads: list[int] = typer.Option([], "--threads", "-t", help="Thread counts (default 1, 2)."),
    option: list[str] = typer.Option(
        [],
        "--option",
        "-O",
        help="Backend or pass option, prefixed with its name: -O tvm.tune_seconds=600, "
        "-O prune_structured.round_to=8 (a bare key applies to every backend). Repeatable.",
    ),
    measure: str = typer.Option(
        "20s",
        "--measure",
        metavar=DURATION,
        help="Confirmation time (a third of it screens every variant first).",
    ),
    finalists: int = typer.Option(
        3, "--finalists", min=1, help="How many screened variants are confirmed."
    ),
    data: str = typer.Option(
        "auto", "--data", help="Evaluation images: auto, builtin, a folder, a video."
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
    """Try recipes x backends x threads; keep what meets the bound; measure; write the winner."""
    backend_opts, pass_opts = split_options(option)
    settings = AutoSettings(
        bound=bound,
        budget_s=parse_duration(budget),
        candidates=tuple(candidate) or tuple(CANDIDATES),
        backends=tuple(backend) or None,
        threads=tuple(threads) or (1, 2),
        measure_s=parse_duration(measure),
        finalists=finalists,
        backend_options=backend_opts,
        pass_options=pass_opts,
        data=data,
        interface=_interface.overrides(
            card, input_mean, input_std, input_order, output_activation, person_channel
        ),
        card=_interface.card_extras(card),
        shapes=_interface.shapes(shape),
    )
    with steps("auto") as note:
        result = search(model, out, settings, progress=note)
    emit_json(json_out, (out / "report.json").read_text())
    console = human(json_out)
    print_table(
        "edgeopt auto: every variant tried",
        (
            "variant",
            "backend",
            parse_bound(result.bound)[0],
            "SNR dB",
            "status",
            "screening",
            "speed-up",
        ),
        summary_rows(result),
        console,
    )
    w = result.winner
    if w.candidate == "fp32" and w.backend == "onnxruntime" and w.name.startswith("baseline"):
        console.print(
            "no significant win: no variant's p10 speed-up was above 1.0 (noise, or nothing "
            f"faster within the bound); wrote the baseline to {out}/winner, report.md"
        )
    else:
        lo = result.comparison.speedup(w.name)[1]
        console.print(
            f"winner: {w.name} ({w.speedup:.2f}x, p10 {lo:.2f}x vs ORT fp32); wrote "
            f"{out}/winner, report.md"
        )
    _exit_on_failed_backends(result, settings.backends or ())


def _exit_on_failed_backends(result: AutoResult, asked: tuple[str, ...]) -> None:
    """Exit `EXIT_PARTIAL` when a backend named with ``-b`` failed on every variant it got
    (an error, not a fidelity or budget verdict): the report is written."""
    failed = []
    for backend in asked:
        mine = [t for t in result.tried if t.backend == backend]
        errors = [t for t in mine if t.error]
        if not mine:  # not installed: the search said so and went on without it
            failed.append(f"{backend}: {get_backend(backend).install_hint}")
        elif len(errors) == len(mine):
            failed.append(f"{backend}: {errors[0].status}")
    if failed:
        human(None).print(f"error: every variant failed on {'; '.join(failed)}", markup=False)
        raise typer.Exit(EXIT_PARTIAL)
