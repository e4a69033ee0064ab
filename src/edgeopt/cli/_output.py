"""Shared printing helpers for the subcommands: rich tables on stdout."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from edgeopt.errors import EdgeoptError

__all__ = ["STATE", "console", "guard", "print_table"]

# Piped output (logs, CI) gets wide tables instead of columns squeezed to 80 characters.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Print a table; numeric-looking columns are right-aligned."""
    table = Table(title=title, title_justify="left")
    rows = [list(r) for r in rows]
    for i, col in enumerate(columns):
        numeric = bool(rows) and all(r[i][:1].isdigit() for r in rows)
        table.add_column(col, justify="right" if numeric else "left")
    for r in rows:
        table.add_row(*r)
    console.print(table)


STATE = {"verbose": False}
"""Global CLI flags, set by the root callback (``-v``)."""


def guard(command: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a subcommand: an EdgeoptError becomes one line on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EdgeoptError as e:
            err = Console(stderr=True, highlight=False, soft_wrap=True)
            if STATE["verbose"]:
                err.print(traceback.format_exc(), markup=False)
            err.print(f"error: {e}", markup=False)
            raise typer.Exit(1) from e

    return wrapper
