"""``-O/--option key=value`` backend options, and ``--target`` names, parsed once for all commands.

Values are read as JSON where they parse (``threads=2``, ``spinning=false``,
``target={"kind": "llvm"}``) and as text otherwise (``precision=bf16``); the backend's own
options model then validates them, so an error names the option. When several backends are
compared, ``-O tvm.tune_seconds=600`` applies to one backend and a bare key to every one.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from typing import Any

from edgeopt.errors import ConfigError
from edgeopt.registry import backend_names, pass_names

__all__ = ["TARGETS", "backend_options", "parse_shapes", "parse_target", "split_options"]

TARGETS: dict[str, dict[str, Any]] = {
    "aarch64": {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "num-cores": 4},
    "rpi4": {
        "kind": "llvm",
        "mtriple": "aarch64-linux-gnu",
        "mcpu": "cortex-a72",
        "mattr": ["+neon"],
        "num-cores": 4,
    },
    "rpi5": {
        "kind": "llvm",
        "mtriple": "aarch64-linux-gnu",
        "mcpu": "cortex-a76",
        "mattr": ["+neon", "+dotprod"],
        "num-cores": 4,
    },
}
"""Named cross targets for TVM (64-bit ARM boards); ``host`` is this CPU."""


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def backend_options(items: Sequence[str], backend: str, known: Sequence[str]) -> dict[str, Any]:
    """The options ``-O`` gives ``backend``: bare keys, and keys prefixed with its name.

    Args:
        items: The ``key=value`` texts, as given.
        backend: The backend these options are for.
        known: Every backend name (a prefix must be one of them).

    Raises:
        ConfigError: An item that is not ``key=value``, or a prefix naming no backend.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"-O {item!r}: write options as key=value, e.g. -O threads=2")
        prefix, dot, rest = key.strip().partition(".")
        if dot:
            if prefix not in known:
                raise ConfigError(
                    f"-O {item!r}: {prefix!r} is not a backend; known: {', '.join(known)}"
                )
            if prefix != backend:
                continue
            key = rest
        out[key.strip()] = _value(value.strip())
    return out


def split_options(items: Sequence[str]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """``-O`` items for several backends and passes: ({backend: opts}, {pass: opts}).

    A key prefixed with a backend's or a pass's name goes to it; a bare key to every backend.

    Raises:
        ConfigError: An item that is not ``key=value``, or a prefix that names nothing.
    """
    backends, passes = backend_names(), pass_names()
    by_backend = {b: backend_options(items, b, [*backends, *passes]) for b in backends}
    by_pass: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        prefix, dot, rest = key.strip().partition(".")
        if dot and prefix in passes:
            by_pass.setdefault(prefix, {})[rest.strip()] = _value(value.strip())
    return {b: o for b, o in by_backend.items() if o}, by_pass


def parse_target(text: str | None) -> dict[str, Any] | None:
    """A TVM target from ``--target``: ``host``, a name of `TARGETS`, or an LLVM target string.

    ``llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72 -mattr=+neon`` becomes the dict form.

    Raises:
        ConfigError: Neither a known name nor an ``llvm ...`` string.
    """
    if text is None or text == "host":
        return None
    if text in TARGETS:
        return dict(TARGETS[text])
    parts = shlex.split(text)
    if not parts or parts[0] != "llvm":
        raise ConfigError(
            f"--target {text!r}: give host, one of {', '.join(TARGETS)}, or an LLVM target "
            "string such as 'llvm -mtriple=aarch64-linux-gnu -mcpu=cortex-a72'"
        )
    target: dict[str, Any] = {"kind": "llvm"}
    for part in parts[1:]:
        key, sep, value = part.lstrip("-").partition("=")
        if not sep:
            raise ConfigError(f"--target {text!r}: {part!r} is not -key=value")
        target[key] = value.split(",") if key == "mattr" else _value(value)
    return target


def parse_shapes(items: Sequence[str]) -> dict[str, list[int]]:
    """``--shape NAME=1x3x256x256`` values by input name.

    Raises:
        ConfigError: Not NAME=positive sizes joined by x.
    """
    out = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            values = [int(d) for d in dims.lower().split("x")]
        except ValueError:
            values = []
        if not sep or not name or not values or min(values) < 1:
            raise ConfigError(f"--shape {item!r}: write NAME=1x3x256x256 (positive sizes)")
        out[name] = values
    return out
