"""Entry point of the ``edgeopt`` command: subcommands, and errors as one line and exit 1.

Each subcommand lives in its own module, parses its arguments, calls one library function and
prints. An `EdgeoptError` becomes one line on stderr and exit code 1; ``-v`` adds the traceback.
The line is read by one grammar (`_grammar`: global flags anywhere, ``--json PATH|-``,
durations, exit codes).
"""

from __future__ import annotations

import logging

import typer

from edgeopt.cli import auto, bench, compile_, convert, info, list_, models
from edgeopt.cli import bgremove as bgremove_cmd
from edgeopt.cli import optimize as optimize_cmd
from edgeopt.cli._grammar import Grammar
from edgeopt.cli._output import STATE, guard

__all__ = ["app", "main"]

app = typer.Typer(
    name="edgeopt",
    help="Make ML models run fast on edge CPUs: import, optimize, compile, benchmark.",
    cls=Grammar,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from edgeopt import __version__

        typer.echo(f"edgeopt {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(
        False, "-v", "--verbose", help="Show tracebacks and debug logs (anywhere on the line)."
    ),
    quiet: bool = typer.Option(
        False, "-q", "--quiet", help="No progress lines, only results and errors (anywhere)."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    STATE["verbose"] = verbose
    STATE["quiet"] = quiet
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


app.command("info")(guard(info.info))
app.command("bench")(guard(bench.bench))
app.command("list")(guard(list_.list_plugins))
app.command("convert")(guard(convert.convert))
app.command("compile")(guard(compile_.compile_model))
app.command("auto")(guard(auto.auto))
app.command("optimize")(guard(optimize_cmd.optimize))
app.command("bgremove")(guard(bgremove_cmd.bgremove))
app.add_typer(models.app, name="models")


@app.command("gst-env")
def _gst_env() -> None:
    """Print the shell exports that let gst-launch-1.0 find the edgeoptbgremove element."""
    import shlex

    from edgeopt.apps.background.gst import plugin_env

    env = plugin_env({})
    for key in ("GST_PLUGIN_PATH", "PYTHONPATH", "GST_REGISTRY_FORK"):
        typer.echo(f"export {key}={shlex.quote(env[key])}")


def main() -> None:
    """Run the ``edgeopt`` command."""
    app()


if __name__ == "__main__":
    main()
