"""``edgeopt bench MODEL [MODEL ...]``: measure models on backends and thread counts, side by side.

Every model (a zoo name, a model file, or an artifact folder from ``edgeopt compile``) times
every ``--backend`` / ``--threads`` combination (an artifact folder runs on the backend it was
compiled for) is one variant; all are measured interleaved in worker processes and the first
is the baseline. A variant that fails is a failed row; the others are still measured. With
``--remote HOST:PORT --key KEY`` (TVM only) the model is compiled here and measured on a device
behind a TVM RPC tracker (`edgeopt.bench.remote`).
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

from edgeopt._api import load
from edgeopt._fs import atomic_write_text
from edgeopt.backends.saved import is_saved, read_saved
from edgeopt.bench import BenchSettings, Comparison, Variant, compare
from edgeopt.bench.report import COLUMNS, instability, rows, save_chart
from edgeopt.cli import _interface
from edgeopt.cli._grammar import DURATION, EXIT_PARTIAL, parse_duration
from edgeopt.cli._options import backend_options, parse_shapes
from edgeopt.cli._output import JSON, STATE, console, emit_json, print_table, steps
from edgeopt.errors import ConfigError
from edgeopt.registry import backend_names

__all__ = ["NARROW", "bench"]

NARROW = ("variant", "p50 ms", "p99 ms", "speed-up", "peak MB")
"""The columns shown on a terminal narrower than 120 characters (the JSON keeps them all)."""


def bench(
    models: list[str] = typer.Argument(
        ..., help="Zoo names, model files (.onnx .tflite .pt2) or `edgeopt compile` folders."
    ),
    backend: list[str] = typer.Option(
        ["onnxruntime"], "--backend", "-b", help="Backend; repeat to compare."
    ),
    threads: list[int] = typer.Option(
        [], "--threads", "-t", help="Intra-op threads; repeat to compare."
    ),
    warmup: int = typer.Option(10, "--warmup", min=0, help="Untimed runs before timing."),
    runs: int = typer.Option(100, "--runs", min=1, help="Timed runs per variant."),
    duration: str | None = typer.Option(
        None,
        "--time",
        metavar=DURATION,
        help="Time for the timed runs instead of --runs, e.g. 30s (at least 5 rounds).",
    ),
    block: int = typer.Option(
        10, "--block", min=1, help="Calls per variant per interleaved round."
    ),
    json_out: str | None = JSON,
    chart: Path | None = typer.Option(
        None, "--chart", help="Write a PNG bar chart here (missing folders are created)."
    ),
    markdown_out: Path | None = typer.Option(
        None, "--markdown", help="Write a Markdown table here (missing folders are created)."
    ),
    remote: str | None = typer.Option(
        None, "--remote", help="Measure on a TVM RPC device: the tracker's HOST:PORT."
    ),
    key: str | None = typer.Option(None, "--key", help="Device key at the --remote tracker."),
    option: list[str] = typer.Option(
        [], "--option", "-O", help="Backend option key=value, or BACKEND.key=value for one."
    ),
    shape: list[str] = typer.Option(
        [], "--shape", help="Size of an input with dynamic dimensions: NAME=1x3x256x256."
    ),
    data: str | None = typer.Option(
        None, "--data", help="Feed a real image (a folder or a video) through the interface."
    ),
    card: Path | None = _interface.CARD,
    input_mean: str | None = _interface.MEAN,
    input_std: str | None = _interface.STD,
    input_order: str | None = _interface.ORDER,
) -> None:
    """Benchmark models: latency percentiles, throughput, memory and size, side by side."""
    shapes = parse_shapes(shape)
    fields = _interface.overrides(card, input_mean, input_std, input_order, None, None)
    paths = [m if is_saved(m) else str(load(m).path) for m in models]  # fail fast, convert
    if len(set(backend)) != len(backend) or len(set(threads)) != len(threads):
        raise ConfigError("repeat --backend and --threads with distinct values only")
    seconds = parse_duration(duration) if duration is not None else None
    settings = BenchSettings(
        warmup=warmup, runs=None if seconds else runs, seconds=seconds, block=block
    )
    title = Path(models[0]).name if len(models) == 1 else f"{len(models)} models"
    if remote is not None or key is not None:
        if len(paths) != 1:
            raise ConfigError("--remote measures one model at a time")
        result = _remote(paths[0], backend, threads, remote, key, settings)
        _write(title, result, json_out, markdown_out, chart)
        _exit_on_failures(result)
        return
    variants = []
    thread_choices: list[int | None] = list(threads) or [None]
    known = backend_names()
    for model, path in zip(models, paths, strict=True):
        label = Path(model).name if len(models) > 1 else ""
        if is_saved(path):
            saved = read_saved(path)["backend"]
            variants.append(
                Variant(
                    name=label or saved,
                    model=path,
                    backend=saved,
                    shapes=shapes,
                    data=data,
                    interface=fields,
                )
            )
            continue
        for b, t in itertools.product(backend, thread_choices):
            options = backend_options(option, b, known) | ({} if t is None else {"threads": t})
            # Every option the user set is in the row's name (precision=bf16 is another variant).
            extra = "".join(f" {k}={v}" for k, v in options.items() if k != "threads")
            name = (b if t is None else f"{b}-{t}t") + extra
            variants.append(
                Variant(
                    name=f"{label} {name}".strip() if label else name,
                    model=path,
                    backend=b,
                    options=options,
                    shapes=shapes,
                    data=data,
                    interface=fields,
                )
            )
    label = f"benchmarking {len(variants)} variant(s)"
    if sys.stderr.isatty() and not STATE["quiet"]:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task(label, total=None)
            result = compare(
                variants,
                settings,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    else:
        with steps(label) as note:
            last = [0.0]

            def every_5s(done: int, total: int) -> None:
                if time.monotonic() - last[0] >= 5.0 or (done == total and settings.runs):
                    last[0] = time.monotonic()
                    note(f"round {done}" + (f" of {total}" if settings.runs else ""))

            result = compare(variants, settings, progress=every_5s)
    _write(title, result, json_out, markdown_out, chart)
    _exit_on_failures(result)


def _exit_on_failures(result: Comparison) -> None:
    """Exit `EXIT_PARTIAL` when a variant failed (its row and the others were written)."""
    if result.failures:
        Console(stderr=True).print(
            f"error: {len(result.failures)} variant(s) failed: "
            + "; ".join(f"{k}: {v}" for k, v in result.failures.items()),
            markup=False,
        )
        raise typer.Exit(EXIT_PARTIAL)


def _remote(
    path: str,
    backend: list[str],
    threads: list[int],
    remote: str | None,
    key: str | None,
    settings: BenchSettings,
) -> Comparison:
    if backend != ["tvm"]:
        raise ConfigError(
            f"--remote measures TVM-compiled models only; give --backend tvm (got {backend})"
        )
    if remote is None or key is None:
        raise ConfigError("give both --remote HOST:PORT and --key KEY, e.g. --key rasp4")
    if len(threads) > 1:
        raise ConfigError("--remote measures one thread count; give --threads once at most")
    from edgeopt.bench.remote import measure_remote
    from edgeopt.bench.rpc import RemoteDevice, parse_address

    host, port = parse_address(remote)
    options = {"threads": threads[0]} if threads else {}
    with console.status(f"compiling and measuring on {key!r} at {remote}"):
        measured = measure_remote(
            path, RemoteDevice(host=host, port=port, key=key), options, settings
        )
    errors = ", ".join(f"{k} {v:.2g}" for k, v in measured.max_abs_error.items())
    console.print(f"device outputs match ONNX Runtime here (max abs error: {errors})")
    return measured.comparison


def _write(
    title: str,
    result: Comparison,
    json_out: str | None,
    markdown_out: Path | None,
    chart: Path | None,
) -> None:
    to_stdout = json_out == "-"
    if to_stdout:  # the JSON alone on stdout; the table goes to stderr
        Console(stderr=True).print(f"{title}: measured {len(result.results)} variant(s)")
    else:
        table = rows(result)
        columns: tuple[str, ...] = COLUMNS
        if console.width < 120:  # a narrow terminal: the columns that matter, numbers whole
            keep = [COLUMNS.index(c) for c in NARROW]
            columns = NARROW
            table = [tuple(r[i] for i in keep) for r in table]
        print_table(f"{title}: latency per inference", columns, table)
    for warning in instability(result):
        Console(stderr=True).print(
            f"warning: unstable measurement, {warning}: the machine is busy or the run short; "
            "rerun longer (--time) on a quiet machine",
            markup=False,
        )
    emit_json(json_out, result.to_json())
    if markdown_out:
        from edgeopt.bench.report import markdown

        atomic_write_text(markdown_out, markdown(result))
        console.print(f"wrote {markdown_out}")
    if chart:
        save_chart(result, chart, title=f"{title}: latency per inference")
        console.print(f"wrote {chart}")
