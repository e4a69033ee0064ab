"""A model's image interface, described once: what its input expects, what its output means.

One `ModelInterface` is used by everything that feeds a model an image or reads its output:
calibration and evaluation (fidelity), the benchmark's real-data feeds, and the
background-removal app. Its two methods are *the* pre- and post-processing code path, so what
is measured is what runs:

- `ModelInterface.preprocess`: a uint8 frame (any size, BGR or RGB) -> the input tensor:
  resized, put in the model's channel order, normalized as ``(pixel - mean) / std`` per
  channel (pixels in 0..255), NHWC or NCHW, batch of 1. Bilinear (the default) is one pass
  over the frame (`edgeopt.pixels.resize`, float, as ``cv2.resize`` samples but without its
  rounding to uint8); ``area`` and ``nearest`` resize with OpenCV.
- `ModelInterface.person_probability`: the raw output -> one HxW person-probability map in
  [0, 1], taking the model's activation into account (sigmoid/softmax applied in the graph,
  or logits that edgeopt turns into probabilities) and its person channel.

Where the interface comes from: a zoo entry carries its own; for any other model
`infer_interface` reads what the graph says (input layout and size from the shape; a trailing
Sigmoid or Softmax means the output is already a probability, otherwise it holds logits;
channel counts) and the user gives the rest as flags or a small YAML card (`load_card`), with
the same field names. The graph cannot say how a model normalizes its input: the default is
pixels / 255 in [0, 1], and a model trained on ImageNet-normalized inputs needs
``mean``/``std`` given (e.g. ``123.675,116.28,103.53`` / ``58.395,57.12,57.375``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import onnx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgeopt._fs import read_yaml
from edgeopt.artifact import ModelArtifact
from edgeopt.errors import ConfigError, describe_validation
from edgeopt.pixels.resize import resize_normalize

__all__ = [
    "CARD_FIELDS",
    "Activation",
    "ModelInterface",
    "infer_interface",
    "interface_from_options",
    "load_card",
]

Activation = Literal["none", "sigmoid", "softmax", "logits"]
"""What edgeopt applies to the output to get probabilities: ``none`` (already probabilities:
the graph ends in a Sigmoid or Softmax), ``sigmoid``, ``softmax`` over the channel axis, or
``logits`` (softmax over channels when there are two or more, sigmoid for one channel)."""

_RESIZE = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "nearest": cv2.INTER_NEAREST}
_TO_RGB = {"BGR": cv2.COLOR_BGR2RGB, "BGRA": cv2.COLOR_BGRA2RGB, "RGBA": cv2.COLOR_RGBA2RGB}
_TO_BGR = {"RGB": cv2.COLOR_RGB2BGR, "RGBA": cv2.COLOR_RGBA2BGR, "BGRA": cv2.COLOR_BGRA2BGR}
Order = Literal["RGB", "BGR", "RGBA", "BGRA"]


class ModelInterface(BaseModel):
    """What an image model's input expects and what its output means.

    Normalization: the tensor holds ``(pixel - mean) / std`` per channel, pixels in 0..255
    in the model's channel order; the default (mean 0, std 255) is pixels / 255 in [0, 1].
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_name: str = Field(description="Name of the image input tensor.")
    input_size: tuple[int, int] = Field(description="(height, width) the model takes.")
    layout: Literal["nhwc", "nchw"] = Field(default="nhwc", description="Input tensor layout.")
    channel_order: Literal["rgb", "bgr"] = Field(
        default="rgb", description="Channel order the model was trained on."
    )
    mean: tuple[float, float, float] = Field(
        default=(0.0, 0.0, 0.0), description="Per-channel mean, in pixel units (0..255)."
    )
    std: tuple[float, float, float] = Field(
        default=(255.0, 255.0, 255.0), description="Per-channel std, in pixel units (0..255)."
    )
    resize: Literal["bilinear", "area", "nearest"] = Field(
        default="bilinear", description="How frames are resized to the input size."
    )
    output_name: str | None = Field(
        default=None, description="Name of the mask output; None: the model has no mask output."
    )
    output_layout: Literal["nhwc", "nchw"] = Field(
        default="nhwc", description="Where the output's channel axis is: last, or axis 1."
    )
    activation: Activation = Field(
        default="none", description="What turns the output into probabilities (see Activation)."
    )
    person_channel: int = Field(
        default=-1, description="Output channel holding the person class (-1: the last)."
    )

    @model_validator(mode="after")
    def _check(self) -> ModelInterface:
        if min(self.input_size) < 1:
            raise ValueError(f"input_size must be positive, got {self.input_size}")
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive per channel, got {self.std}")
        return self

    @property
    def has_mask(self) -> bool:
        """Whether the model has a person-mask output that `person_probability` can read."""
        return self.output_name is not None

    def describe(self) -> str:
        """One line for reports: layout, order, normalization, output meaning."""
        norm = (
            "pixels/255"
            if self.mean == (0.0, 0.0, 0.0) and self.std == (255.0, 255.0, 255.0)
            else f"(pixel-{list(self.mean)})/{list(self.std)}"
        )
        h, w = self.input_size
        out = (
            f"mask {self.output_name!r} ({self.activation}, channel {self.person_channel})"
            if self.has_mask
            else "no mask output"
        )
        return f"{self.input_name!r} {self.layout} {h}x{w} {self.channel_order} {norm}; {out}"

    def preprocess(
        self, frame: np.ndarray, order: Order = "BGR", out: np.ndarray | None = None
    ) -> np.ndarray:
        """The model's input tensor (batch of 1, float32) for one uint8 frame.

        Args:
            frame: HxWxC uint8 image in ``order``.
            order: Its channel order.
            out: A buffer of the input's shape to write into and return (the app reuses one
                per frame); a new array when None or of another shape.

        Raises:
            ConfigError: Not an HxWx3/4 uint8 frame in ``order``.
        """
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != len(order):
            raise ConfigError(
                f"frame of shape {frame.shape} and dtype {frame.dtype} does not match channel "
                f"order {order}: give an HxWx{len(order)} uint8 image"
            )
        h, w = self.input_size
        want = "RGB" if self.channel_order == "rgb" else "BGR"
        shape = (1, h, w, 3) if self.layout == "nhwc" else (1, 3, h, w)
        if out is None or out.shape != shape or out.dtype != np.float32:
            out = np.empty(shape, np.float32)
        if self.resize == "bilinear":  # one pass, every CPU (0.29 instead of 0.45 ms at 720p)
            picks = (order.index(want[0]), order.index(want[1]), order.index(want[2]))
            dst = out[0] if self.layout == "nhwc" else out[0].transpose(1, 2, 0)
            resize_normalize(frame, dst, picks, *_per_channel(self.mean, self.std))
            return out
        scale, shift = _affine(self.mean, self.std)  # (x - mean) / std = x * scale + shift
        small = cv2.resize(frame, (w, h), interpolation=_RESIZE[self.resize])
        if order != want:
            small = cv2.cvtColor(small, (_TO_RGB if want == "RGB" else _TO_BGR)[order])
        # Written straight into the input buffer; channels-first reads the frame through a
        # transposed view (per-channel constants then broadcast as [3, 1, 1]).
        src = small if self.layout == "nhwc" else small.transpose(2, 0, 1)
        if self.layout == "nchw" and np.ndim(scale):
            scale, shift = scale.reshape(3, 1, 1), shift.reshape(3, 1, 1)
        np.multiply(src, scale, out=out[0])
        if np.any(shift):
            np.add(out[0], shift, out=out[0])
        return out

    def person_probability(self, output: np.ndarray) -> np.ndarray:
        """The person-probability map (HxW float32 in [0, 1]) of one raw output.

        Raises:
            ConfigError: The model has no mask output, or the output's shape is not a map.
        """
        if not self.has_mask:
            raise ConfigError("this model's interface has no mask output (output_name is None)")
        a = np.asarray(output, dtype=np.float32)
        if a.ndim == 4:
            a = a[0]
        if a.ndim == 2:
            a = a[..., None] if self.output_layout == "nhwc" else a[None]
        if a.ndim != 3:
            raise ConfigError(
                f"output {self.output_name!r} has shape {np.shape(output)}: a mask output is "
                "[1,H,W,C], [1,C,H,W], [1,H,W] or [H,W]"
            )
        # C,H,W as a transposed view (numpy's moveaxis: 0.03 ms a frame under the profiler)
        channels = a if self.output_layout == "nchw" else a.transpose(2, 0, 1)
        c = channels.shape[0]
        if not -c <= self.person_channel < c:
            raise ConfigError(
                f"person channel {self.person_channel} is out of range for output "
                f"{self.output_name!r} with {c} channel(s)"
            )
        act = self.activation
        if act == "logits":
            act = "softmax" if c >= 2 else "sigmoid"
        if act == "softmax":
            shifted = channels - channels.max(axis=0, keepdims=True)
            e = np.exp(shifted)
            return np.asarray(e[self.person_channel] / e.sum(axis=0), np.float32)
        p = channels[self.person_channel]
        if act == "sigmoid":
            with np.errstate(over="ignore"):  # exp(-p) = inf for p < -88 gives 0, as it should
                return np.asarray(1.0 / (1.0 + np.exp(-p)), np.float32)
        # Two ufuncs into one new array (np.clip's Python wrapper: 0.03 ms under the profiler).
        out: np.ndarray = np.maximum(p, np.float32(0.0))
        np.minimum(out, np.float32(1.0), out=out)
        return out


@functools.lru_cache(maxsize=64)
def _affine(
    mean: tuple[float, float, float], std: tuple[float, float, float]
) -> tuple[np.floating[Any] | np.ndarray, np.floating[Any] | np.ndarray]:
    """``(scale, shift)`` with ``(x - mean) / std == x * scale + shift``; scalars when the three
    channels agree (one SIMD pass: the zoo models' pixels / 255 costs what it always did)."""
    scale = 1.0 / np.asarray(std, np.float64)
    shift = -np.asarray(mean, np.float64) * scale
    if np.all(scale == scale[0]) and np.all(shift == shift[0]):
        return np.float32(scale[0]), np.float32(shift[0])
    return scale.astype(np.float32), shift.astype(np.float32)


@functools.lru_cache(maxsize=64)
def _per_channel(
    mean: tuple[float, float, float], std: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray]:
    """`_affine`'s ``(scale, shift)`` as three float32 values each."""
    scale, shift = _affine(mean, std)
    three = np.ones(3, np.float32)
    return (three * scale).astype(np.float32), (three * shift).astype(np.float32)


def _producer_op(graph: onnx.GraphProto, name: str) -> str | None:
    """The op that makes ``name``, looking through layout-only ops (Transpose, Reshape...)."""
    producers = {o: n for n in graph.node for o in n.output}
    seen = 0
    while name in producers and seen < 16:
        node = producers[name]
        if node.op_type not in ("Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze"):
            return str(node.op_type)
        name, seen = node.input[0], seen + 1
    return None


def infer_interface(
    model: ModelArtifact, overrides: Mapping[str, Any] | None = None
) -> ModelInterface | None:
    """The interface a model's graph implies, with the user's ``overrides`` on top.

    The first input must be an image ([1,H,W,3] or [1,3,H,W], static H and W); the first
    output is a mask when it is 4-D (or 3-D) with the input's spatial aspect and 1 or 2
    channels. A trailing Sigmoid or Softmax means probabilities (``activation: none``),
    anything else logits. For 2 channels the person is channel 1 unless overridden.

    Returns:
        The interface, or None when the first input is not an image and nothing overrides it.

    Raises:
        ConfigError: Overrides that are invalid or name a tensor the model does not have.
    """
    fields: dict[str, Any] = {}
    spec = model.inputs[0] if model.inputs else None
    shape = spec.shape if spec else ()
    if spec and len(shape) == 4 and all(isinstance(d, int) for d in shape[1:]):
        if shape[3] == 3:
            fields.update(input_name=spec.name, input_size=(shape[1], shape[2]), layout="nhwc")
        elif shape[1] == 3:
            fields.update(input_name=spec.name, input_size=(shape[2], shape[3]), layout="nchw")
    if fields and model.outputs:
        out = model.outputs[0]
        oshape = tuple(out.shape)
        h, w = fields["input_size"]
        layout = _mask_layout(oshape, h, w)
        if layout is not None:
            channels = 1 if len(oshape) == 3 else oshape[3 if layout == "nhwc" else 1]
            op = _producer_op(model.proto().graph, out.name)
            fields.update(
                output_name=out.name,
                output_layout=layout,
                activation="none" if op in ("Sigmoid", "Softmax") else "logits",
                person_channel=1 if channels == 2 else 0,
            )
    merged = {**fields, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    if "input_name" not in merged:
        if overrides:
            raise ConfigError(
                f"{model.path}: the first input {spec.name if spec else None!r} of shape "
                f"{list(shape)} is not an image [1,H,W,3] or [1,3,H,W]; an interface cannot "
                "be given for it"
            )
        return None
    names = {s.name for s in model.inputs}
    if merged["input_name"] not in names:
        raise ConfigError(f"{model.path}: no input named {merged['input_name']!r}")
    outs = {s.name for s in model.outputs}
    if merged.get("output_name") is not None and merged["output_name"] not in outs:
        raise ConfigError(f"{model.path}: no output named {merged['output_name']!r}")
    return _validated(merged, str(model.path))


def _mask_layout(shape: tuple[Any, ...], h: int, w: int) -> Literal["nhwc", "nchw"] | None:
    """Where a mask output's channel axis is, or None when the shape is not a mask."""

    def spatial(a: Any, b: Any) -> bool:
        return isinstance(a, int) and isinstance(b, int) and a * w == b * h and a >= 8

    if len(shape) == 3 and spatial(shape[1], shape[2]):
        return "nhwc"
    if len(shape) != 4:
        return None
    if shape[3] in (1, 2) and spatial(shape[1], shape[2]):
        return "nhwc"
    if shape[1] in (1, 2) and spatial(shape[2], shape[3]):
        return "nchw"
    return None


def _validated(fields: Mapping[str, Any], where: str) -> ModelInterface:
    try:
        return ModelInterface.model_validate(dict(fields))
    except ValidationError as e:
        problems = describe_validation(e, lambda loc: str(loc[-1]) if loc else "")
        raise ConfigError(f"{where}: bad model interface: {problems}") from e


CARD_FIELDS = ("task", "shapes", "values", "audio", "state")
"""A YAML card's fields beyond the interface's (read by `edgeopt.card.card_fields`)."""


def load_card(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML model card's interface fields: those of `ModelInterface`, any subset.

    The card may also hold the fields of `CARD_FIELDS` (task, shapes, ...): they are read by
    `edgeopt.card.card_fields` and left out here.

    Returns:
        The fields, for `infer_interface`'s overrides.

    Raises:
        ConfigError: Missing file, not UTF-8 YAML, not a mapping, or unknown fields.
    """
    p = Path(path)
    data = read_yaml(p, "model card")
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a model card is a mapping of interface fields")
    data = {k: v for k, v in data.items() if k not in CARD_FIELDS}
    unknown = sorted(set(data) - set(ModelInterface.model_fields))
    if unknown:
        raise ConfigError(
            f"{p}: unknown model card field(s) {unknown}; known: "
            f"{', '.join([*ModelInterface.model_fields, *CARD_FIELDS])}"
        )
    for key in ("mean", "std", "input_size"):
        if isinstance(data.get(key), list):
            data[key] = tuple(data[key])
    return data


def _triple(text: str | None, flag: str) -> tuple[float, float, float] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as e:
        raise ConfigError(f"{flag} wants three numbers R,G,B, got {text!r}") from e
    if len(values) == 1:
        values = values * 3
    if len(values) != 3:
        raise ConfigError(f"{flag} wants three numbers R,G,B (or one for all), got {text!r}")
    return (values[0], values[1], values[2])


def interface_from_options(
    card: str | os.PathLike[str] | None = None,
    mean: str | None = None,
    std: str | None = None,
    order: str | None = None,
    activation: str | None = None,
    person_channel: int | None = None,
) -> dict[str, Any]:
    """The interface overrides the command line gives (``--card`` first, flags on top).

    Raises:
        ConfigError: A bad card or flag value.
    """
    fields = load_card(card) if card is not None else {}
    if order is not None and order.lower() not in ("rgb", "bgr"):
        raise ConfigError(f"--input-order must be rgb or bgr, got {order!r}")
    if activation is not None and activation not in ("none", "sigmoid", "softmax", "logits"):
        raise ConfigError(
            f"--output-activation must be sigmoid, softmax, logits or none, got {activation!r}"
        )
    flags = {
        "mean": _triple(mean, "--input-mean"),
        "std": _triple(std, "--input-std"),
        "channel_order": order.lower() if order else None,
        "activation": activation,
        "person_channel": person_channel,
    }
    fields.update({k: v for k, v in flags.items() if v is not None})
    return fields
