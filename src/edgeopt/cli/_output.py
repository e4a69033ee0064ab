"""Shared printing helpers for the subcommands: rich tables on stdout."""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from edgeopt._fs import atomic_write_text, os_error_message
from edgeopt.errors import EdgeoptError

__all__ = [
    "JSON",
    "STATE",
    "Terminated",
    "console",
    "emit_json",
    "guard",
    "human",
    "install_signal_handlers",
    "print_table",
    "steps",
]

JSON = typer.Option(
    None,
    "--json",
    metavar="PATH|-",
    help="Also write the result as JSON: to PATH (missing folders are created), or '-' for "
    "stdout (tables then go to stderr).",
)
"""The ``--json PATH|-`` option every command that has a result takes."""

# Piped output (logs, CI) gets wide tables instead of columns squeezed to 80 characters.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[str]],
    to: Console | None = None,
) -> None:
    """Print a table (on ``to``, stdout's console by default); numeric-looking columns are
    right-aligned."""
    table = Table(title=title, title_justify="left")
    rows = [list(r) for r in rows]
    for i, col in enumerate(columns):
        numeric = bool(rows) and all(r[i][:1].isdigit() for r in rows)
        table.add_column(col, justify="right" if numeric else "left")
    for r in rows:
        table.add_row(*(Text(c) for c in r))  # as written: 'edgeopt[tvm]' is not markup
    (to or console).print(table)


STATE = {"verbose": False, "quiet": False}
"""Global CLI flags, set by the root callback (``-v``, ``-q``)."""


def human(json_dest: str | None) -> Console:
    """Where tables and notes go: stderr when the JSON result takes stdout."""
    return Console(stderr=True, highlight=False, soft_wrap=True) if json_dest == "-" else console


def emit_json(dest: str | None, text: str) -> None:
    """Write a JSON result to ``dest`` (``-``: stdout; a path: whole or not at all)."""
    if dest is None:
        return
    if dest == "-":
        typer.echo(text)
        return
    atomic_write_text(Path(dest), text if text.endswith("\n") else text + "\n")
    Console(stderr=True, highlight=False).print(f"wrote {dest}", markup=False)


@contextlib.contextmanager
def steps(label: str) -> Iterator[Callable[[str], None]]:
    """A progress reporter for a long job: a spinner with the latest line on a terminal,
    timestamped lines on stderr otherwise (a log, CI), nothing with ``--quiet``."""
    if STATE["quiet"]:
        yield lambda line: None
        return
    if sys.stderr.isatty():
        with Console(stderr=True).status(label) as status:
            yield lambda line: status.update(f"{label}: {line}")
        return
    start = time.monotonic()

    def line_out(line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        took = time.monotonic() - start
        print(f"{stamp} +{took:.0f}s {label}: {line}", file=sys.stderr, flush=True)

    line_out("started")
    yield line_out


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised as an interruption so every ``finally`` and context manager cleans up."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def install_signal_handlers() -> None:
    """SIGTERM unwinds like Ctrl-C (outputs closed, temporaries removed) instead of dying."""
    with contextlib.suppress(ValueError):  # not the main thread: leave the default
        signal.signal(signal.SIGTERM, _on_sigterm)


def _one_line(e: BaseException) -> tuple[str, int]:
    """The message and exit code for an error that reached the command line."""
    if isinstance(e, EdgeoptError):
        return str(e), 1
    if isinstance(e, Terminated):
        return "terminated (SIGTERM); outputs finished so far were kept", 128 + signal.SIGTERM
    if isinstance(e, KeyboardInterrupt):
        return "interrupted (Ctrl-C); outputs finished so far were kept", 130
    if isinstance(e, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({e.reason} at byte {e.start}): save it as UTF-8", 1
    if isinstance(e, OSError):
        return os_error_message(e), 1
    if isinstance(e, MemoryError):
        return (
            "not enough memory for this model or input (an input shape too large?): give "
            "smaller shapes or free some memory",
            1,
        )
    raise e


def guard(command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a subcommand: an error becomes one line on stderr and a non-zero exit code.

    `EdgeoptError`, OS errors (permission, disk full) and memory errors exit 1; Ctrl-C exits
    130 and SIGTERM 143, after the command's own cleanup ran. ``-v`` adds the traceback.
    """

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        install_signal_handlers()
        try:
            return command(*args, **kwargs)
        except (EdgeoptError, OSError, MemoryError, UnicodeDecodeError, KeyboardInterrupt) as e:
            message, code = _one_line(e)
            err = Console(stderr=True, highlight=False, soft_wrap=True)
            if STATE["verbose"]:
                err.print(traceback.format_exc(), markup=False)
            err.print(f"error: {message}", markup=False)
            raise typer.Exit(code) from e

    return wrapper
