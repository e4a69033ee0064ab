"""``report.html``: what ``edgeopt auto`` found, on one page you look at.

Self-contained (the images are inline PNG, no script, no network): the speed-vs-fidelity plot
of every variant with the bound and the Pareto front, the masks of the finalists on a few
evaluation frames beside the fp32 model's (for a segmentation model), the per-layer decisions
of the winner's recipe (layers kept in fp32, channels pruned), and the table of every variant.
Written by hand with `html.escape`: one page of tables and two images needs no template
engine (a new dependency).
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt._fs import atomic_write_text
from edgeopt.auto.settings import Outcome, parse_bound
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


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


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
        kind = "confirmed" if t.speedup is not None else "screened"
        if t.name.startswith("baseline"):
            kind = "confirmed"
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
    text = _png(fig)
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
    text = _png(fig)
    plt.close(fig)
    return text


def _decisions(winner: Outcome) -> list[tuple[str, str, str]]:
    """(pass, applied, what it decided) of the winner's recipe, from its pipeline report."""
    report = Path(winner.model).parent / "report.json"
    if not report.is_file():
        return []
    rows = []
    for step in json.loads(report.read_text()).get("steps", []):
        details = step.get("details") or {}
        found = []
        accuracy = details.get("accuracy") or {}
        if accuracy.get("fp32_nodes") is not None:
            kept = accuracy["fp32_nodes"]
            found.append(f"{len(kept)} layer(s) kept in fp32: {', '.join(kept[:12])}")
        for key in ("quantized_nodes", "ratio", "channels_removed", "macs_removed", "pruned"):
            if key in details:
                found.append(f"{key.replace('_', ' ')}: {details[key]}")
        layers = details.get("layers") or details.get("per_layer")
        if isinstance(layers, dict):
            found += [f"{k}: {v}" for k, v in list(layers.items())[:12]]
        if not found:  # a pass with its own details (rewrites applied, ops converted)
            found = [f"{k}: {v}" for k, v in details.items() if isinstance(v, int | float | str)]
        rows.append((step["name"], "applied" if step.get("applied") else "no", "; ".join(found)))
    return rows


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
    plot = _plot(tried, bound, winner.name)
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>edgeopt auto</title>",
        "<style>body{font-family:sans-serif;margin:24px;max-width:1200px}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;"
        "padding:3px 7px;text-align:left}th{background:#f0f0f0}.w{background:#fde2e2}"
        "img{max-width:100%}</style></head><body>",
        "<h1>edgeopt auto</h1>",
        f"<p>Winner: <b>{e(winner.name)}</b> ({e(winner.backend)}, recipe "
        f"{e(winner.candidate)}), {_x(winner.speedup)} over ONNX Runtime fp32, every variant "
        f"held to <b>{e(bound)}</b> on {e(data)}.</p>",
        "<h2>Speed and fidelity of every variant</h2>",
        f"<img alt='speed vs fidelity' src='data:image/png;base64,{plot}'>",
    ]
    if frames and masks:
        parts += [
            "<h2>Masks on evaluation frames</h2>",
            "<p>Each variant's person mask and its difference to the fp32 model's.</p>",
            f"<img alt='masks' src='data:image/png;base64,{_masks(frames, masks)}'>",
        ]
    rows = _decisions(winner)
    if rows:
        parts.append("<h2>The winner's recipe, layer by layer</h2><table>")
        parts.append("<tr><th>pass</th><th>applied</th><th>decisions</th></tr>")
        parts += [f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{e(c)}</td></tr>" for a, b, c in rows]
        parts.append("</table>")
    parts.append("<h2>Every variant</h2><table>")
    parts.append(
        f"<tr><th>variant</th><th>backend</th><th>{e(metric)}</th><th>SNR dB</th>"
        "<th>status</th><th>screening</th><th>speed-up</th></tr>"
    )
    for t in tried:
        f = t.fidelity or {}
        cls = " class='w'" if t.name == winner.name else ""
        parts.append(
            f"<tr{cls}><td>{e(t.name)}</td><td>{e(t.backend)}</td><td>{_num(f.get(metric))}</td>"
            f"<td>{_num(f.get('snr'), '.1f')}</td><td>{e(t.status)}</td>"
            f"<td>{_x(t.screen_speedup)}</td><td>{_x(t.speedup)}</td></tr>"
        )
    parts.append("</table></body></html>")
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path


def _x(value: float | None) -> str:
    return f"{value:.2f}x" if value is not None else "-"


def _num(value: object, fmt: str = ".4f") -> str:
    return format(value, fmt) if isinstance(value, float | int) and value == value else "-"
