"""Typed optimization recipes: which passes run, in which order, with which options.

A recipe is YAML validated by pydantic models with ``extra="forbid"``; each pass's options are
validated against that pass's own options model (``options_type``), so a typo or a value of the
wrong type fails before any work starts, with a message naming the field::

    passes:
      - name: simplify
      - name: quantize
        options: {mode: static, per_channel: true, accuracy: {metric: iou, threshold: 0.98}}
    data: {source: builtin, calibration_count: 16, evaluation_count: 24}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeopt._fs import read_yaml
from edgeopt.errors import ConfigError, EdgeoptError, describe_validation
from edgeopt.metrics import parse_bound
from edgeopt.registry import canonical_name, get_pass, pass_names

__all__ = ["DataSettings", "PassStep", "Recipe", "load_recipe", "parse_recipe", "recipe_from_flags"]


class PassStep(BaseModel):
    """One pass of a recipe and its options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="A registered pass name (see `edgeopt list`).")
    options: dict[str, Any] = Field(
        default_factory=dict, description="The pass's options, validated by its options model."
    )

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        known = pass_names()
        name = canonical_name(name)
        if name not in known:
            raise ValueError(f"unknown pass {name!r}; known passes: {', '.join(known)}")
        return name

    @model_validator(mode="after")
    def _options(self) -> PassStep:
        try:
            impl = get_pass(self.name)
        except EdgeoptError as e:
            raise ValueError(str(e)) from e
        options_type = getattr(type(impl), "options_type", None)
        if options_type is None:
            return self
        try:
            options_type.model_validate(self.options)
        except ValidationError as e:
            where = describe_validation(e, lambda loc: ".".join(map(str, ("options", *loc))))
            raise ValueError(where) from None
        return self


class DataSettings(BaseModel):
    """Where calibration and evaluation inputs come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str = Field(
        default="auto",
        description="auto (built-in images for image models, else random), builtin, random, "
        "a folder of images, or a video file.",
    )
    calibration_count: int = Field(default=16, ge=1, le=4096, description="Calibration inputs.")
    evaluation_count: int = Field(
        default=24, ge=1, le=4096, description="Held-out evaluation inputs for fidelity."
    )
    seed: int = Field(default=0, description="Seed of the augmentations (evaluation uses seed+1).")


class Recipe(BaseModel):
    """An optimization recipe: passes in order, and the data they are measured on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    passes: list[PassStep] = Field(min_length=1, description="Passes, run in this order.")
    data: DataSettings = Field(default_factory=DataSettings, description="Input data settings.")
    backend: Literal["onnxruntime"] = Field(
        default="onnxruntime", description="Backend that runs the models to measure fidelity."
    )
    interface: dict[str, Any] | None = Field(
        default=None,
        description="The model's image interface (the fields of a model card: mean, std, "
        "channel_order, activation, person_channel, ...); the graph tells the rest.",
    )


def _location(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "recipe"


def parse_recipe(data: Any, origin: str = "recipe") -> Recipe:
    """Validate a recipe from already-parsed data (a dict).

    Raises:
        ConfigError: The message names each bad field (``passes[1].options.per_channel``).
    """
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        problems = describe_validation(e, _location)
        raise ConfigError(f"{origin}: invalid recipe: {problems}") from e


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a YAML recipe file.

    Raises:
        ConfigError: Missing file, bad YAML, or an invalid recipe (the field is named).
    """
    p = Path(path)
    data = read_yaml(p, "recipe")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{p}: a recipe is a mapping with a 'passes' list, got {type(data).__name__}"
        )
    return parse_recipe(data, str(p))


def recipe_from_flags(
    simplify: bool = False,
    quantize: str | None = None,
    prune: float | None = None,
    prune_structured: float | None = None,
    fp16: bool = False,
    bound: str | None = None,
    data: DataSettings | None = None,
    ort_layout: bool = False,
) -> Recipe:
    """A recipe from the CLI's inline flags (``--quantize static --prune 0.3``).

    Order: simplify, structured prune, unstructured prune, quantize (or fp16), ort_layout —
    pruning before quantization so the quantizer calibrates the pruned model, and the layout
    rewrites last, on the graph the runtime will see.

    Raises:
        ConfigError: No pass asked for, or a bad value.
    """
    steps: list[dict[str, Any]] = []
    if simplify:
        steps.append({"name": "simplify"})
    if prune_structured is not None:
        steps.append({"name": "prune_structured", "options": {"ratio": prune_structured}})
    if prune is not None:
        steps.append({"name": "prune_unstructured", "options": {"sparsity": prune}})
    if quantize is not None:
        options: dict[str, Any] = {"mode": quantize}
        if bound is not None:  # accuracy-aware: layers stay fp32 until the bound holds
            metric, threshold = parse_bound(bound)
            options["accuracy"] = {"metric": metric, "threshold": threshold}
        steps.append({"name": "quantize", "options": options})
    if fp16:
        steps.append({"name": "fp16"})
    if ort_layout:
        steps.append({"name": "ort_layout"})
    if not steps:
        raise ConfigError(
            "nothing to do: give --recipe FILE or at least one of --simplify, --quantize, "
            "--prune, --prune-structured, --fp16, --ort-layout"
        )
    raw: dict[str, Any] = {"passes": steps}
    if data is not None:
        raw["data"] = data.model_dump()
    return parse_recipe(raw, "command-line flags")
