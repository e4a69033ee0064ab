"""A model's card: everything about a model that its graph cannot say, in one typed record.

The graph tells input names, shapes and dtypes. It does not tell how to make an input from a
photo, a video or an audio file, what size a dynamic dimension should take, which inputs are
constants (Silero VAD's sample rate), which are recurrent state fed back from an output, or
what the outputs mean (the task, and so the fidelity metric). A `ModelCard` says all of it:

- ``interface``: an image input's pre-processing and a person-mask output (`ModelInterface`);
- ``task``: what the outputs mean (`edgeopt.tasks`), and so the metric and its default bound;
- ``shapes``: default sizes for inputs with dynamic dimensions (``--shape`` overrides them);
- ``values``: inputs fed one constant value (a sample rate, a flag);
- ``audio``: an audio input: sample rate and window length; a file is cut into windows;
- ``images``: which built-in images suit the model (photographs, or printed text for OCR);
- ``state``: recurrent inputs, each fed the named output of the previous sample (zeros first).

Zoo models carry their card inside the ONNX file, as the JSON of metadata property
``edgeopt.card`` (`CARD_KEY`), so the card travels with the model through every command; a
user's YAML card (``--card``) gives the same fields for any other model, on top.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeopt._fs import atomic_path, read_yaml
from edgeopt.artifact import ModelArtifact, TensorSpec, load_onnx
from edgeopt.errors import ConfigError, describe_validation
from edgeopt.interface import CARD_FIELDS, ModelInterface
from edgeopt.tasks import Task, TaskSpec, default_bound

__all__ = [
    "CARD_KEY",
    "AudioInput",
    "ModelCard",
    "attach_card",
    "card_fields",
    "card_of",
    "constant_feeds",
    "parse_card",
    "resolve_card",
    "store_card",
]

CARD_KEY = "edgeopt.card"
"""The ONNX metadata property that holds a model's card as JSON."""


class AudioInput(BaseModel):
    """An input that takes windows of mono audio samples in [-1, 1]."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_name: str = Field(description="The input tensor that takes the samples.")
    sample_rate: int = Field(gt=0, description="Samples per second the model expects.")
    window: int = Field(gt=0, description="Samples per window (one inference).")
    context: int = Field(
        default=0,
        ge=0,
        description="Samples of the previous window put before each window (Silero VAD 6 "
        "takes 64 of context before its 512 new samples at 16 kHz).",
    )


class ModelCard(BaseModel):
    """Everything about a model that its graph cannot say (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interface: ModelInterface | None = Field(
        default=None, description="Image input pre-processing and person-mask output."
    )
    task: TaskSpec | None = Field(
        default=None, description="What the outputs mean; None: generic (SNR per output)."
    )
    shapes: dict[str, tuple[int, ...]] = Field(
        default_factory=dict, description="Default shape of inputs with dynamic dimensions."
    )
    values: dict[str, float] = Field(
        default_factory=dict, description="Inputs fed one constant value, by name."
    )
    audio: AudioInput | None = Field(default=None, description="An audio input, if any.")
    images: Literal["photos", "text-pages", "text-lines", "text-lines-turned"] = Field(
        default="photos",
        description="The built-in images for this model: photographs (people and scenes), "
        "pages of printed text (a text detector), text-line crops (a recognizer), or crops a "
        "third of them turned 180 degrees (a direction classifier).",
    )
    state: dict[str, str] = Field(
        default_factory=dict,
        description="Recurrent inputs: input name -> the output fed back into it.",
    )

    @property
    def bound(self) -> str:
        """The task's default fidelity bound."""
        return default_bound(self.task)

    def task_or_generic(self) -> Task:
        """The card's task, or the generic one (SNR on every output)."""
        from edgeopt.tasks import GenericTask

        return self.task if self.task is not None else GenericTask()

    def to_json(self) -> str:
        """The card as compact JSON (what `CARD_KEY` holds)."""
        return self.model_dump_json(exclude_none=True)


def parse_card(data: Mapping[str, Any] | str, where: str = "model card") -> ModelCard:
    """A card from its JSON text or its mapping (a YAML card's content).

    Raises:
        ConfigError: Not JSON, unknown fields or bad values (one line naming each problem).
    """
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: the card is not valid JSON: {e}") from e
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: a card is a mapping of fields")
    try:
        return ModelCard.model_validate(dict(data))
    except ValidationError as e:
        problems = describe_validation(e, lambda loc: ".".join(str(p) for p in loc))
        raise ConfigError(f"{where}: bad model card: {problems}") from e


def card_of(model: ModelArtifact) -> ModelCard | None:
    """The card stored in a model file (`CARD_KEY`), or None when it has none.

    Raises:
        ConfigError: The stored card is damaged.
    """
    props = model.metadata.get("props") or {}
    text = props.get(CARD_KEY)
    return None if text is None else parse_card(text, f"{model.path}: {CARD_KEY}")


def card_fields(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """The card fields beyond the interface (task, shapes, values, audio, state) of a YAML
    card (``--card``); its interface fields are read by `edgeopt.interface.load_card`.

    Raises:
        ConfigError: Missing file, not YAML, or bad values.
    """
    if path is None:
        return {}
    data = read_yaml(Path(path), "model card")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a model card is a mapping of fields")
    fields = {k: v for k, v in data.items() if k in CARD_FIELDS}
    parse_card(fields, str(path))  # checked here, where the file is named
    return fields


def resolve_card(model: ModelArtifact, fields: Mapping[str, Any] | None = None) -> ModelCard:
    """The model's own card (stored in the file) with the user's card fields on top.

    Raises:
        ConfigError: A damaged stored card or bad user fields.
    """
    stored = card_of(model) or ModelCard()
    if not fields:
        return stored
    merged = {**stored.model_dump(exclude_none=True), **fields}
    return parse_card(merged, f"{model.path}: the card")


def attach_card(model: onnx.ModelProto, card: ModelCard) -> onnx.ModelProto:
    """``model`` with ``card`` as its `CARD_KEY` metadata (replacing an older card; the other
    metadata kept, in order). Changes and returns ``model``."""
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != CARD_KEY]
    del model.metadata_props[:]
    for key, value in (*kept, (CARD_KEY, card.to_json())):
        model.metadata_props.add(key=key, value=value)
    return model


def store_card(model: ModelArtifact, card: ModelCard) -> ModelArtifact:
    """The model file rewritten with ``card`` inside (a temporary file, checked, renamed);
    the model itself when it already holds that card. Passes rebuild graphs and drop
    metadata: the pipeline puts the card back into each step's model with this, so an
    optimized model is benchmarked and compiled with the same card (constants, state) as
    its source.

    Raises:
        WriteError: The file cannot be written.
    """
    if card_of(model) == card:
        return model
    proto = attach_card(model.proto(), card)
    with atomic_path(model.path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
        load_onnx(tmp)
    return load_onnx(model.path)


def constant_feeds(
    inputs: Sequence[TensorSpec], card: ModelCard, where: object = "the model"
) -> dict[str, np.ndarray]:
    """The inputs a card fixes: its constant values, and recurrent state at zeros (the start),
    each of the card's shape, else the input's (a dynamic dimension as 1), in its dtype.

    Random feeds for timing take these too: a sample rate fed 0 or 1 sends Silero VAD down
    another branch, and a benchmark would time (or crash in) a path the model never runs.

    Raises:
        ConfigError: The card names an input the model does not have.
    """
    specs = {s.name: s for s in inputs}
    unknown = sorted(set(card.values) - set(specs))
    if unknown:
        raise ConfigError(
            f"{where}: the card's values name no input of the model: {unknown}; inputs: "
            f"{sorted(specs)}"
        )
    fill = {}
    for name in [*card.values, *(n for n in card.state if n in specs)]:
        spec = specs[name]
        shape = card.shapes.get(name) or spec.concrete_shape()
        value = card.values.get(name, 0.0)
        fill[name] = np.full(shape, value, np.dtype(spec.dtype))
    return fill
