"""``report.html``: what ``edgeopt auto`` found, on one page you look at.

Self-contained (the images are inline PNG, no script, no network): the speed-vs-fidelity plot
of every variant with the bound and the Pareto front, the masks of the finalists on a few
evaluation frames beside the fp32 model's (for a segmentation model), the per-layer decisions
of the winner's recipe (layers kept in fp32, channels pruned), and the table of every variant.
Built with `edgeopt.htmlpage`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.auto.report import variant_rows
from edgeopt.auto.settings import Outcome, parse_bound
from edgeopt.htmlpage import Page, decisions, png
from edgeopt.metrics import LOWER_IS_BETTER

__all__ = ["MaskRow", "write_html"]

WINNER_COLOUR = "#d62728"
"""The winner's marker in the plot (a test looks for it in a screenshot)."""


@dataclass(frozen=True)
class MaskRow:
    """One variant's person masks on the evaluation frames shown.

    Attributes:
        name: The variant.
        masks: Person probability per frame, HxW in [0, 1].
    """

    name: str
    masks: tuple[np.ndarray, ...]


def _plot(tried: Sequence[Outcome], bound: str, winner: str) -> str:
    """Speed-up vs the bound's metric, every variant with both; the bound; the Pareto front."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric, threshold = parse_bound(bound)
    lower = metric in LOWER_IS_BETTER
    fig, ax = plt.subplots(figsize=(9, 5.5))
    points = []
    for t in tried:
        value = (t.fidelity or {}).get(metric)
        speed = t.speedup if t.speedup is not None else t.screen_speedup
        if not isinstance(value, int | float) or value != value or speed is None:
            continue
        points.append((speed, float(value), t))
    styles = {
        "winner": (WINNER_COLOUR, "*", 260, "winner"),
        "confirmed": ("#1f77b4", "o", 60, "confirmed against the baseline alone"),
        "screened": ("#9e9e9e", "o", 30, "screened out"),
    }
    seen = set()
    for speed, value, t in points:
        kind = "confirmed" if t.speedup is not None else "screened"  # the baseline: 1.0
        colour, marker, size, label = styles[kind]
        ax.scatter(
            speed, value, c=colour, marker=marker, s=size, label=None if kind in seen else label
        )
        seen.add(kind)
    best = next((p for p in points if p[2].name == winner), None)
    if best is not None:
        colour, marker, size, label = styles["winner"]
        ax.scatter(best[0], best[1], c=colour, marker=marker, s=size, label=label, zorder=5)
        ax.annotate(best[2].name, (best[0], best[1]), textcoords="offset points", xytext=(8, 6))
    inside = [p for p in points if (p[1] <= threshold if lower else p[1] >= threshold)]
    front: list[tuple[float, float, Outcome]] = []
    for p in sorted(inside, key=lambda p: -p[0]):  # fastest first: keep each fidelity record
        if not front or (p[1] < front[-1][1] if lower else p[1] > front[-1][1]):
            front.append(p)
    if front:
        ax.plot(
            [p[0] for p in front], [p[1] for p in front], "--", c="#2ca02c", label="Pareto front"
        )
    ax.axhline(threshold, c="#555555", lw=1, ls=":", label=f"bound {bound}")
    ax.axvline(1.0, c="#bbbbbb", lw=1)
    ax.set_xlabel("speed-up over ONNX Runtime fp32 (confirmed, else screening)")
    ax.set_ylabel(metric)
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    text = png(fig)
    plt.close(fig)
    return text


def _masks(frames: Sequence[np.ndarray], rows: Sequence[MaskRow]) -> str:
    """Frames on top; per variant its mask and its difference to the fp32 model's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reference = rows[0]
    cols = 2 * len(frames)
    fig, axes = plt.subplots(
        len(rows) + 1, cols, figsize=(2.0 * cols, 2.0 * (len(rows) + 1)), squeeze=False
    )
    for j, frame in enumerate(frames):
        axes[0][2 * j].imshow(frame)
        axes[0][2 * j].set_title(f"frame {j + 1}", fontsize=8)
    for i, row in enumerate(rows, 1):
        for j, mask in enumerate(row.masks):
            axes[i][2 * j].imshow(mask, cmap="gray", vmin=0, vmax=1)
            diff = np.abs(mask - reference.masks[j])
            axes[i][2 * j + 1].imshow(diff, cmap="magma", vmin=0, vmax=1)
            axes[i][2 * j].set_title(f"{row.name[:28]}", fontsize=7)
            axes[i][2 * j + 1].set_title(f"|diff| max {diff.max():.2f}", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    text = png(fig)
    plt.close(fig)
    return text


def _decisions(winner: Outcome) -> list[tuple[str, str, str]]:
    """The winner's recipe, layer by layer, from its pipeline report (none for fp32)."""
    report = Path(winner.model).parent / "report.json"
    if not report.is_file():
        return []
    return decisions(json.loads(report.read_text()).get("steps", []))


def write_html(
    path: Path,
    winner: Outcome,
    tried: Sequence[Outcome],
    bound: str,
    data: str,
    frames: Sequence[np.ndarray] = (),
    masks: Sequence[MaskRow] = (),
) -> Path:
    """Write ``report.html``.

    Args:
        path: The file to write (atomically).
        winner: What the search chose (the baseline when nothing won).
        tried: Every variant, the baseline first.
        bound: The bound every variant was held to.
        data: Where the evaluation data came from.
        frames: Evaluation frames (RGB uint8) for the mask panel; empty: no panel.
        masks: The fp32 model's masks first, then the variants' (same frames).
    """
    metric = parse_bound(bound)[0]
    page = Page("edgeopt auto")
    page.para(
        f"Winner: {winner.name} ({winner.backend}, recipe {winner.candidate}), "
        f"{winner.speedup or 1.0:.2f}x over ONNX Runtime fp32, every variant held to {bound} "
        f"on {data}.",
        bold=(winner.name, bound),
    )
    page.heading("Speed and fidelity of every variant")
    page.image("speed vs fidelity", _plot(tried, bound, winner.name))
    if frames and masks:
        page.heading("Masks on evaluation frames")
        page.para("Each variant's person mask and its difference to the fp32 model's.")
        page.image("masks", _masks(frames, masks))
    rows = _decisions(winner)
    if rows:
        page.heading("The winner's recipe, layer by layer")
        page.table(("pass", "applied", "decisions"), rows)
    page.heading("Every variant")
    table = variant_rows(tried, bound)
    headers = ("variant", "backend", metric, "SNR dB", "status", "screening", "speed-up")
    marked = next((i for i, t in enumerate(tried) if t.name == winner.name), None)
    page.table(headers, table, marked)
    return page.write(path)
