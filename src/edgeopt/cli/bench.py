"""``edgeopt bench MODEL``: measure a model on one or more backends and thread counts.

Several ``--backend`` / ``--threads`` values make a comparison of every combination,
measured interleaved in worker processes; the first combination is the baseline.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from edgeopt._api import load
from edgeopt._fs import atomic_write_text
from edgeopt.bench import BenchSettings, Variant, compare
from edgeopt.bench.report import COLUMNS, rows, save_chart
from edgeopt.cli._output import console, print_table
from edgeopt.errors import ConfigError

__all__ = ["bench"]


def bench(
    model: Path = typer.Argument(..., help="Model file (.onnx)."),
    backend: list[str] = typer.Option(
        ["onnxruntime"], "--backend", "-b", help="Backend; repeat to compare."
    ),
    threads: list[int] = typer.Option(
        [], "--threads", "-t", help="Intra-op threads; repeat to compare."
    ),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed runs before timing."),
    runs: int = typer.Option(100, "--runs", min=1, help="Timed runs per variant."),
    seconds: float | None = typer.Option(
        None, "--seconds", min=0.1, help="Time budget instead of --runs."
    ),
    block: int = typer.Option(
        10, "--block", min=1, help="Calls per variant per interleaved round."
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Write every sample as JSON here."),
    chart: Path | None = typer.Option(None, "--chart", help="Write a PNG bar chart here."),
    markdown_out: Path | None = typer.Option(
        None, "--markdown", help="Write a Markdown table here."
    ),
) -> None:
    """Benchmark MODEL: latency percentiles, throughput, memory and size, side by side."""
    path = str(load(model).path)  # fails fast with the file's own error; converts .tflite
    if len(set(backend)) != len(backend) or len(set(threads)) != len(threads):
        raise ConfigError("repeat --backend and --threads with distinct values only")
    variants = []
    thread_choices: list[int | None] = list(threads) or [None]
    for b, t in itertools.product(backend, thread_choices):
        name = b if t is None else f"{b}-{t}t"
        variants.append(
            Variant(name=name, model=path, backend=b, options={} if t is None else {"threads": t})
        )
    settings = BenchSettings(
        warmup=warmup, runs=None if seconds else runs, seconds=seconds, block=block
    )
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"benchmarking {len(variants)} variant(s)", total=None)
        result = compare(
            variants,
            settings,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    print_table(f"{model.name}: latency per inference", COLUMNS, rows(result))
    if json_out:
        atomic_write_text(json_out, result.to_json())
        console.print(f"wrote {json_out}")
    if markdown_out:
        from edgeopt.bench.report import markdown

        atomic_write_text(markdown_out, markdown(result))
        console.print(f"wrote {markdown_out}")
    if chart:
        save_chart(result, chart, title=f"{model.name}: latency per inference")
        console.print(f"wrote {chart}")
