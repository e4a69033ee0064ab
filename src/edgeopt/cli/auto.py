"""``edgeopt auto MODEL --bound 'iou>=0.98' --budget 15m``: the fastest faithful variant."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from edgeopt.auto import CANDIDATES, AutoSettings, parse_bound, search, summary_rows
from edgeopt.cli import _interface
from edgeopt.cli._options import split_options
from edgeopt.cli._output import console, print_table
from edgeopt.errors import ConfigError

__all__ = ["auto", "parse_duration"]


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``90s``, ``15m`` or ``1h``.

    Raises:
        ConfigError: Not a duration.
    """
    m = re.fullmatch(r"\s*([0-9.]+)\s*([smh]?)\s*", text)
    if not m:
        raise ConfigError(f"bad duration {text!r}: write it like 90s, 15m or 1h")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]


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
    budget: str = typer.Option("15m", "--budget", help="Search budget: 90s, 15m, 1h."),
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
    measure: float = typer.Option(
        20.0, "--measure-s", min=1, help="Confirmation time (a third of it screens first)."
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
) -> None:
    """Try recipes x backends x threads; keep what meets the bound; measure; write the winner."""
    backend_opts, pass_opts = split_options(option)
    settings = AutoSettings(
        bound=bound,
        budget_s=parse_duration(budget),
        candidates=tuple(candidate) or tuple(CANDIDATES),
        backends=tuple(backend) or None,
        threads=tuple(threads) or (1, 2),
        measure_s=measure,
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
    with console.status("searching") as status:
        result = search(model, out, settings, progress=lambda line: status.update(line))
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
    )
    w = result.winner
    if w.candidate == "fp32" and w.backend == "onnxruntime" and w.name.startswith("baseline"):
        console.print(
            "no significant win: no variant's p10 speed-up was above 1.0 (noise, or nothing "
            f"faster within the bound); wrote the baseline to {out}/winner, report.md"
        )
        return
    lo = result.comparison.speedup(w.name)[1]
    console.print(
        f"winner: {w.name} ({w.speedup:.2f}x, p10 {lo:.2f}x vs ORT fp32); wrote {out}/winner, "
        "report.md"
    )
