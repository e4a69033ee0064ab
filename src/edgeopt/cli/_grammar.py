"""The one grammar every ``edgeopt`` command follows (the README's "Command-line grammar").

- ``-h``/``--help`` on every command; the global flags ``-v``/``--verbose`` and
  ``-q``/``--quiet`` anywhere on the line (they are moved before the subcommand).
- ``--json PATH|-`` wherever a result can be written: ``-`` is stdout (the tables then go to
  stderr or are left out), a path is written whole or not at all. A bare ``--json`` (the old
  switch of ``info``/``list``) means ``--json -``.
- Durations are ``DURATION``: ``250ms``, ``90s``, ``15m``, ``1h`` (a bare number is seconds,
  milliseconds for a per-frame budget). Old duration flags (``--seconds``, ``--measure-s``,
  ``--budget-ms``) still work and say what to write instead.
- Exit codes: 0 done; 1 an error (one line on stderr, nothing half-written); 2 a usage error;
  3 partly done: results were written, but something asked for failed (a bench variant, an
  auto backend); 130 Ctrl-C; 143 SIGTERM.

Click has no global options below the root and no options with an optional value, so the line
is rewritten before click reads it (`normalize`, called by `Grammar.parse_args`).
"""

from __future__ import annotations

import re
import sys
from typing import Any

from typer.core import TyperGroup

from edgeopt.errors import ConfigError

__all__ = [
    "DURATION",
    "EXIT_PARTIAL",
    "GLOBAL_FLAGS",
    "METAVARS",
    "RENAMED",
    "Grammar",
    "normalize",
    "parse_duration",
]

EXIT_PARTIAL = 3
"""Exit code when results were written but something asked for failed."""

DURATION = "DURATION"
"""The metavar of every time flag."""

GLOBAL_FLAGS = ("-v", "--verbose", "-q", "--quiet")
"""Flags of the root command that may be written anywhere."""

RENAMED: dict[str, tuple[str, str]] = {
    "--seconds": ("--time", "s"),
    "--measure-s": ("--measure", "s"),
    "--budget-ms": ("--frame-budget", "ms"),
}
"""Old duration flag -> (its new name, the unit its bare number was in)."""

METAVARS: dict[str, str] = {
    "--backend": "NAME",
    "--candidate": "NAME",
    "--threads": "N",
    "--warmup": "N",
    "--runs": "N",
    "--block": "N",
    "--finalists": "N",
    "--every": "N",
    "--max-frames": "N",
    "--output": "PATH",
    "--chart": "PATH",
    "--markdown": "PATH",
    "--variant": "PATH",
    "--device": "PATH",
    "--recipe": "FILE",
    "--option": "KEY=VALUE",
    "--bound": "METRIC>=X",
    "--iou-bound": "X",
    "--data": "SOURCE",
    "--remote": "HOST:PORT",
    "--key": "KEY",
    "--target": "TARGET",
    "--shape": "NAME=SHAPE",
    "--quantize": "dynamic|static",
    "--prune-unstructured": "RATIO",
    "--prune-structured": "RATIO",
    "--camera": "INDEX",
    "--effect": "EFFECT",
    "--model": "MODEL",
    "--skip-similar": "LEVELS",
    "--smoothing": "X",
    "--feather": "SIGMA",
    "--threshold": "X",
    "--min-area": "FRACTION",
    "--refine": "none|guided",
    "--size": "WxH",
    "--layout": "nhwc|nchw",
}
"""How each option's value is written in help, where the option does not say it itself."""

_UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, unit: str = "s") -> float:
    """Seconds in a duration: ``250ms``, ``90s``, ``15m``, ``1h``; a bare number is ``unit``.

    Raises:
        ConfigError: Not a duration, or not above zero.
    """
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h)?\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"bad duration {text!r}: write it like 250ms, 90s, 15m or 1h")
    return float(m.group(1)) * _UNITS[m.group(2) or unit]


def normalize(args: list[str]) -> tuple[list[str], list[str]]:
    """The command line as click should read it, and the deprecation lines to print.

    Global flags move to the front, a bare ``--json`` becomes ``--json -``, and an old
    duration flag becomes its new one with its unit written out.
    """
    front: list[str] = []
    rest: list[str] = []
    notes: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":  # everything after it is an argument
            rest.extend(args[i:])
            break
        name, eq, value = arg.partition("=")
        if arg in GLOBAL_FLAGS:
            front.append(arg)
        elif arg == "--json" and (i + 1 == len(args) or _is_option(args[i + 1])):
            rest.extend(["--json", "-"])
        elif name in RENAMED:
            new, unit = RENAMED[name]
            if not eq:
                i += 1
                value = args[i] if i < len(args) else ""
            if re.fullmatch(r"[0-9]*\.?[0-9]+", value):
                value += unit
            notes.append(f"warning: {name} is deprecated: write {new} {value}")
            rest.extend([new, value])
        else:
            rest.append(arg)
        i += 1
    return front + rest, notes


def _is_option(arg: str) -> bool:
    return arg.startswith("-") and arg != "-" and not re.fullmatch(r"-[0-9.]+", arg)


def _name_values(command: Any) -> None:
    """Give every option of ``command`` (and its subcommands) the value name in `METAVARS`
    where it has none, instead of click's ``<list[str]>``."""
    for sub in getattr(command, "commands", {}).values():
        _name_values(sub)
    for param in getattr(command, "params", []):
        if param.metavar is not None:
            continue
        if param.param_type_name == "argument":
            param.metavar = param.name.upper() + ("..." if param.nargs == -1 else "")
            param.display_type_rich = lambda ctx: None  # its help says what it takes
        elif not param.is_flag:
            param.metavar = next((METAVARS[o] for o in param.opts if o in METAVARS), None)


class Grammar(TyperGroup):
    """The root command: reads the line through `normalize` first."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _name_values(self)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args, notes = normalize(list(args))
        for note in notes:
            print(note, file=sys.stderr)
        parsed: list[str] = super().parse_args(ctx, args)
        return parsed
