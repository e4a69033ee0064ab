"""Entry point of the ``edgeopt`` command: subcommands, and errors as one line and exit 1.

Each subcommand lives in its own module, parses its arguments, calls one library function and
prints. An `EdgeoptError` becomes one line on stderr and exit code 1; ``-v`` adds the traceback.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

from edgeopt.cli import bench, info, list_
from edgeopt.errors import EdgeoptError

__all__ = ["app", "main"]

app = typer.Typer(
    name="edgeopt",
    help="Make ML models run fast on edge CPUs: import, optimize, compile, benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_state = {"verbose": False}


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Show tracebacks and debug logs."),
) -> None:
    _state["verbose"] = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _guard(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an EdgeoptError into one line on stderr and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except EdgeoptError as e:
            err = Console(stderr=True, highlight=False, soft_wrap=True)
            if _state["verbose"]:
                err.print(traceback.format_exc(), markup=False)
            err.print(f"error: {e}", markup=False)
            raise typer.Exit(1) from e

    return wrapper


app.command("info")(_guard(info.info))
app.command("bench")(_guard(bench.bench))
app.command("list")(_guard(list_.list_plugins))


def main() -> None:
    """Run the ``edgeopt`` command."""
    app()


if __name__ == "__main__":
    main()
