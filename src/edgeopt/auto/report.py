"""What ``edgeopt auto`` writes: the winner's model and settings, the comparison, the report."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from edgeopt._fs import atomic_path, atomic_write_text
from edgeopt.auto.settings import AutoResult, Outcome, parse_bound
from edgeopt.bench.report import markdown, save_chart
from edgeopt.bench.result import Comparison

__all__ = ["summary_rows", "variant_rows", "write_report"]


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def write_report(
    out: Path,
    winner: Outcome,
    confirmed: Comparison,
    screened: Comparison | None,
    tried: Sequence[Outcome],
    bound: str = "iou>=0.98",
) -> None:
    """Write ``winner/`` (model.onnx, settings.json), ``comparison.*`` and ``report.md/json``."""
    metric = parse_bound(bound)[0]
    folder = out / "winner"
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.onnx") as tmp:
        shutil.copyfile(winner.model, tmp)
    settings = {"backend": winner.backend, "options": winner.options, "candidate": winner.candidate}
    atomic_write_text(folder / "settings.json", json.dumps(settings, indent=2))
    atomic_write_text(out / "comparison.json", confirmed.to_json())
    if screened is not None:
        atomic_write_text(out / "screening.json", screened.to_json())
    save_chart(confirmed, out / "comparison.png", title="edgeopt auto: finalists vs ORT fp32")
    lines = [
        "# edgeopt auto",
        "",
        f"Winner: **{winner.name}** ({winner.backend}, {winner.options}, recipe {winner.candidate})"
        f" — {_x(winner.speedup)} vs ORT fp32, confirmed against the baseline alone.",
        "",
        markdown(confirmed),
        "## Every variant tried",
        "",
        "Screening measures every faithful variant together for a short time; the best are then",
        "confirmed interleaved with the baseline alone (the speed-up column).",
        "",
        f"Every variant is held to **{bound}** on the evaluation data; SNR is the worst "
        "output's, in dB.",
        "",
        f"| variant | backend | {metric} | SNR dB | status | screening | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in tried:
        f = t.fidelity or {}
        fid = f"{_num(f.get(metric))} | {_num(f.get('snr'), '.1f')}"
        lines.append(
            f"| {t.name} | {t.backend} | {fid} | {t.status} | {_x(t.screen_speedup)} "
            f"| {_x(t.speedup)} |"
        )
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    atomic_write_text(
        out / "report.json",
        json.dumps(
            {"bound": bound, "winner": asdict(winner), "tried": [asdict(t) for t in tried]},
            indent=2,
            default=str,
        ),
    )


def _num(value: object, fmt: str = ".4f") -> str:
    return format(value, fmt) if isinstance(value, float | int) and value == value else "-"


def summary_rows(result: AutoResult) -> list[tuple[str, ...]]:
    """Rows for a table of every variant: name, backend, the bound's metric, SNR, status,
    screening, speed-up."""
    return variant_rows(result.tried, result.bound)


def variant_rows(tried: Sequence[Outcome], bound: str) -> list[tuple[str, ...]]:
    """`summary_rows` of the variants ``tried`` under ``bound``."""
    metric = parse_bound(bound)[0]
    rows: list[tuple[str, ...]] = []
    for t in tried:
        f = t.fidelity or {}
        rows.append(
            (
                t.name,
                t.backend,
                _num(f.get(metric)),
                _num(f.get("snr"), ".1f"),
                t.status,
                _x(t.screen_speedup),
                _x(t.speedup),
            )
        )
    return rows
