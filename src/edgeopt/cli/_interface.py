"""The model-interface flags, declared once and shared by bgremove, optimize, auto and bench.

They give what a model's graph cannot say (see `edgeopt.interface`): the input's
normalization and channel order, and what the output means. ``--card FILE`` reads the same
fields from a YAML model card; flags given beside it win.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from edgeopt.card import card_fields
from edgeopt.cli._options import parse_shapes
from edgeopt.interface import interface_from_options

__all__ = [
    "ACTIVATION",
    "CARD",
    "MEAN",
    "ORDER",
    "PERSON",
    "SHAPE",
    "STD",
    "card_extras",
    "overrides",
    "shapes",
]

CARD = typer.Option(
    None,
    "--card",
    metavar="FILE",
    help="YAML model card: interface fields (mean, std, activation, ...) and task, shapes, "
    "values, audio, state.",
)
SHAPE = typer.Option(
    [],
    "--shape",
    metavar="NAME=SHAPE",
    help="Size of an input with dynamic dimensions: NAME=1x3x640x640 (repeatable; a zoo "
    "model's card gives defaults).",
)
MEAN = typer.Option(
    None,
    "--input-mean",
    metavar="R,G,B",
    help="Per-channel mean in pixel units, R,G,B (e.g. 123.7,116.3,103.5).",
)
STD = typer.Option(
    None,
    "--input-std",
    metavar="R,G,B",
    help="Per-channel std in pixel units, R,G,B (default 255: pixels/255).",
)
ORDER = typer.Option(
    None, "--input-order", metavar="rgb|bgr", help="Channel order the model takes."
)
ACTIVATION = typer.Option(
    None,
    "--output-activation",
    metavar="none|sigmoid|softmax|logits",
    help="What the output holds: none (probabilities), sigmoid, softmax, logits.",
)
PERSON = typer.Option(
    None, "--person-channel", min=0, metavar="INDEX", help="Output channel of the person class."
)


def overrides(
    card: Path | None,
    mean: str | None,
    std: str | None,
    order: str | None,
    activation: str | None,
    person_channel: int | None,
) -> dict[str, Any] | None:
    """The interface fields the flags give (None when none was given)."""
    fields = interface_from_options(card, mean, std, order, activation, person_channel)
    return fields or None


def card_extras(card: Path | None) -> dict[str, Any] | None:
    """The card's fields beyond the interface (task, shapes, values, audio, state)."""
    return card_fields(card) or None


def shapes(items: list[str]) -> dict[str, tuple[int, ...]] | None:
    """``--shape`` values by input name (None when none was given)."""
    return {k: tuple(v) for k, v in parse_shapes(items).items()} or None
