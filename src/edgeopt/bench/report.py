"""Render a `Comparison`: table rows, Markdown, and a PNG bar chart with error bars.

The numbers come from the comparison's samples alone; nothing here measures.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from edgeopt._fs import atomic_path
from edgeopt.bench.result import Comparison

__all__ = ["COLUMNS", "markdown", "markdown_table", "rows", "save_chart"]

COLUMNS = (
    "variant",
    "backend",
    "threads",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "mean ms",
    "stdev ms",
    "inf/s",
    "speed-up",
    "peak MB",
    "size KB",
)


def rows(comparison: Comparison) -> list[tuple[str, ...]]:
    """One row of formatted cells per variant, in `COLUMNS` order."""
    out: list[tuple[str, ...]] = []
    for r in comparison.results:
        s = r.stats
        mid, lo, hi = comparison.speedup(r.name)
        out.append(
            (
                r.name,
                r.backend,
                str(r.threads or "default"),
                f"{s.p50:.3f}",
                f"{s.p90:.3f}",
                f"{s.p99:.3f}",
                f"{s.max:.3f}",
                f"{s.mean:.3f}",
                f"{s.stdev:.3f}",
                f"{s.throughput:.1f}",
                f"{mid:.2f}x [{lo:.2f}-{hi:.2f}]",
                f"{r.peak_rss_mb:.0f}",
                f"{r.model_size_bytes / 1024:.1f}",
            )
        )
    for name, error in comparison.failures.items():
        out.append((name, "failed", error, *("-" for _ in COLUMNS[3:])))
    return out


_RULES = {"l": ":---", "r": "---:"}


def markdown_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: Sequence[str] | None = None,
) -> str:
    """A GitHub Markdown table, one line per row, without a trailing newline.

    Args:
        headers: The column titles.
        rows: The cells, already formatted, as many per row as there are headers.
        align: Per column, ``"l"`` (left) or ``"r"`` (right); None leaves every column at
            Markdown's default (left).

    A ``|`` in a cell is escaped as ``\\|`` and a line break becomes a space, so that a cell
    (an error message, say) cannot split its row.

    Raises:
        ValueError: A row or ``align`` whose length is not the number of headers, or an
            alignment other than ``"l"`` and ``"r"``.
    """
    n = len(headers)
    if align is None:
        rule = ["---"] * n
    else:
        if len(align) != n:
            raise ValueError(f"align has {len(align)} entries for {n} columns")
        bad = [a for a in align if a not in _RULES]
        if bad:
            raise ValueError(f"alignment must be 'l' or 'r', not {bad[0]!r}")
        rule = [_RULES[a] for a in align]
    for i, row in enumerate(rows):
        if len(row) != n:
            raise ValueError(f"row {i} has {len(row)} cells for {n} columns")

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(_cell(c) for c in cells) + " |"

    return "\n".join([line(headers), "|" + "|".join(rule) + "|", *(line(r) for r in rows)])


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").splitlines())


def markdown(comparison: Comparison) -> str:
    """The comparison as a Markdown table, with the machine it ran on."""
    env = comparison.environment
    lines = [
        markdown_table(COLUMNS, rows(comparison)),
        "",
        f"Speed-up: median over rounds of {comparison.baseline.name!r}'s median latency / the "
        f"variant's, [p10-p90]; {comparison.block} calls per variant per round, interleaved, "
        "one process per variant.",
    ]
    if env:
        lines.append(
            f"Machine: {env.get('cpu')} ({env.get('usable_cores')} usable cores, "
            f"{' '.join(env.get('cpu_flags', []))}); "
            + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items())
        )
    return "\n".join(lines) + "\n"


def save_chart(comparison: Comparison, path: str | os.PathLike[str], title: str = "") -> Path:
    """Write a PNG bar chart: median latency per variant, error bars p10-p90, speed-up on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r.name for r in comparison.results]
    p50 = np.array([r.stats.p50 for r in comparison.results])
    p10 = np.array([np.percentile(r.samples_ms, 10) for r in comparison.results])
    p90 = np.array([np.percentile(r.samples_ms, 90) for r in comparison.results])
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(names) + 2), 4.2), dpi=110)
    colors = ["#7f7f7f"] + ["#1f77b4"] * (len(names) - 1)
    ax.bar(names, p50, yerr=[p50 - p10, p90 - p50], capsize=5, color=colors)
    for i, name in enumerate(names):
        ax.annotate(
            f"{p50[i]:.2f} ms\n{comparison.speedup(name)[0]:.2f}x",
            (i, p90[i]),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 3),
            textcoords="offset points",
        )
    ax.set_ylabel("latency per inference, ms (median, p10-p90)")
    ax.set_title(title or f"edgeopt: latency vs {comparison.baseline.name}")
    ax.set_ylim(0, float(p90.max()) * 1.25)
    plt.setp(ax.get_xticklabels(), rotation=15, ha="right")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)


def instability(comparison: Comparison, spread: float = 1.5) -> list[str]:
    """Warnings for measurements too noisy to trust, as pyperf gives them.

    A variant is flagged when its p90 latency is more than ``spread`` times its p50, or when its
    per-round speed-ups disagree (p90 more than ``spread`` times p10).
    """
    out = []
    for r in comparison.results:
        s = r.stats
        if s.p50 > 0 and s.p90 / s.p50 > spread:
            out.append(f"{r.name}: p90 is {s.p90 / s.p50:.1f}x its p50")
        if r.name in comparison.speedups and len(comparison.speedups[r.name]) >= 3:
            _, lo, hi = comparison.speedup(r.name)
            if lo > 0 and hi / lo > spread:
                out.append(f"{r.name}: speed-up rounds range {lo:.2f}x-{hi:.2f}x")
    return out
