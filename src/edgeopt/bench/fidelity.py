"""Fidelity: how far an optimized variant's outputs are from its fp32 reference, on real data.

Every optimization pass is paid for with some loss of fidelity; this module measures it, through
the model's card (`edgeopt.card`: the same pre- and post-processing the app runs):

- inputs (`feed_set`), for every input of the model: real images through the
  `ModelInterface` (`edgeopt.data`: a folder, a video, or the built-in sets), windows of real
  audio (`edgeopt.audio`: a file or the built-in speech), samples from a folder of ``.npz``
  files, the card's constant values, and recurrent state (zeros, then carried from the
  previous sample's output as the model runs); calibration and evaluation never share a
  sample;
- metrics (`score_samples`): every output compared (max/mean abs and cosine on the main
  output, SNR in dB on each output, the worst reported); for a mask output, IoU and boundary
  F on the person probability the interface reads; and the task's own metric on the decoded
  outputs (`edgeopt.tasks`: detection F1, landmark NME, top-1, CTC text agreement). Raw
  outputs are never thresholded as if they were probabilities.

An input that nothing above can fill is fed random numbers: that is a warning, the `FeedSet`
says so, and no mask or task metric is claimed on random inputs. A dynamic dimension is never
filled silently: give ``--shape`` (or the card's shapes).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from edgeopt.artifact import ModelArtifact, load_onnx
from edgeopt.audio import load_audio, windows
from edgeopt.backends.base import feeds_for
from edgeopt.card import ModelCard, card_of, constant_feeds
from edgeopt.data import Role, is_tensor_folder, load_images, load_tensors
from edgeopt.errors import ConfigError
from edgeopt.interface import ModelInterface, infer_interface
from edgeopt.metrics import FidelityMetrics, boundary_f_score, compare_outputs, mask_iou
from edgeopt.registry import run_outputs, run_samples
from edgeopt.tasks import GenericTask, Task
from edgeopt.textimages import text_images, text_samples

__all__ = [
    "FeedSet",
    "FidelityMetrics",
    "boundary_f_score",
    "carried_state",
    "compare_outputs",
    "evaluation_feeds",
    "feed_set",
    "mask_iou",
    "mask_reader",
    "measure_fidelity",
    "primary_output",
    "run_outputs",
    "run_samples",
    "score_samples",
]

logger = logging.getLogger(__name__)

Feeds = Mapping[str, np.ndarray]

AUDIO_SECONDS_PER_SAMPLE = 1.0
"""An audio set's ``count`` is in seconds: a model with state needs a sequence, not a few
windows, to show what its errors do over time."""


@dataclass(frozen=True)
class FeedSet:
    """Feeds for calibration or evaluation, and what they are.

    Attributes:
        feeds: One mapping input name -> tensor per sample, in order.
        source: Where they came from, for reports.
        random: True when some input is random numbers (no mask or task metric is valid).
        state: Recurrent inputs (input -> output) carried from one sample to the next.
    """

    feeds: tuple[dict[str, np.ndarray], ...]
    source: str
    random: bool = False
    state: Mapping[str, str] = field(default_factory=dict)


def _as_input(value: np.ndarray | float, shape: Sequence[Any], dtype: str) -> np.ndarray:
    """``value`` as an input of ``shape`` (dynamic dimensions: as the value has them, with
    leading axes of 1 up to the input's rank) and ``dtype``."""
    arr = np.asarray(value, dtype=np.dtype(dtype))
    if all(isinstance(d, int) for d in shape):
        dims = tuple(int(d) for d in shape)
        return (
            arr.reshape(dims) if arr.size == math.prod(dims) else np.broadcast_to(arr, dims).copy()
        )
    if arr.ndim < len(shape):
        return arr.reshape((1,) * (len(shape) - arr.ndim) + arr.shape)
    return arr


def feed_set(
    model: ModelArtifact | str | os.PathLike[str],
    source: str | os.PathLike[str] | None = None,
    count: int = 16,
    seed: int = 0,
    role: Role = "evaluation",
    interface: ModelInterface | None = None,
    card: ModelCard | None = None,
) -> FeedSet:
    """Feeds for every input of ``model``, made from real data as its card says.

    Args:
        model: The model (its dynamic dimensions fixed: see `edgeopt.shapes`).
        source: ``"auto"`` (built-in images/speech, random only for what nothing fills),
            ``"builtin"`` / None, a folder of images, a video, an audio file, a folder of
            ``.npz`` samples, or ``"random"``.
        count: Number of samples (for audio: seconds of windows).
        seed: Seed of the built-in augmentations (or of the random feeds).
        role: ``"calibration"`` or ``"evaluation"``: the two never share a sample.
        interface: The image interface (from the card or the graph when None).
        card: The model card (the one stored in the model when None).

    Raises:
        ConfigError: Images asked for a model that does not take images; an input with a
            dynamic dimension that no data sizes.
    """
    artifact = model if isinstance(model, ModelArtifact) else load_onnx(model)
    card = card if card is not None else (card_of(artifact) or ModelCard())
    specs = {s.name: s for s in artifact.inputs}
    fill = constant_feeds(artifact.inputs, card, artifact.path)
    state = {i: o for i, o in card.state.items() if i in specs}
    text = str(source) if source is not None else "builtin"
    if text == "random":
        return _random(artifact, count, seed, "asked for", fill, state)
    samples: list[dict[str, np.ndarray]] = []
    described: list[str] = []
    interface = interface or card.interface or infer_interface(artifact)
    audio = card.audio
    if is_tensor_folder(source):
        tensors, what = load_tensors(text, count, role)
        samples, described = [dict(t) for t in tensors], [what]
    elif audio is not None and audio.input_name in specs:
        rate = audio.sample_rate
        sound = load_audio(None if text in ("auto", "builtin") else text, rate, role)
        per = max(1, int(AUDIO_SECONDS_PER_SAMPLE * rate / audio.window))
        wins = windows(sound, audio.window, audio.context, count * per)
        shape = specs[audio.input_name].shape
        samples = [{audio.input_name: _as_input(w, shape, "float32")} for w in wins]
        described = [f"{len(wins)} windows of {sound.source}"]
    elif interface is not None:
        if card.images != "photos" and text in ("auto", "builtin"):
            kind: Literal["page", "line"] = "page" if card.images == "text-pages" else "line"
            if card.images == "text-lines":  # a recognizer reads upright lines only
                drawn, what = text_samples(role, 2 * count, kind, seed)
                pictures = [d.image for d in drawn if not d.rotated][:count]
                what = f"{what} (upright lines only)"
            else:
                pictures, what = text_images(role, count, kind, seed)
        else:
            images = load_images(None if text == "auto" else source, count, role, seed)
            pictures, what = images.images, images.source
        samples = [{interface.input_name: interface.preprocess(im, "RGB")} for im in pictures]
        described = [f"{len(samples)} images: {what}"]
    elif text != "auto":
        first = artifact.inputs[0].name if artifact.inputs else None
        raise ConfigError(
            f"{artifact.path}: input {first!r} is not an RGB image ([1,H,W,3] or [1,3,H,W]) "
            "and the model's card names no audio input; give --data auto, a folder of .npz "
            "samples, or 'random'"
        )
    missing = [n for n in specs if n not in fill and not (samples and n in samples[0])]
    if missing and not samples:
        why = f"nothing fills input(s) {missing} (no image, audio or .npz data for them)"
        logger.warning(
            "%s: fidelity is measured on random inputs: %s; give --data and a model card",
            artifact.path,
            why,
        )
        return _random(artifact, count, seed, why, fill, state)
    if missing:
        raise ConfigError(
            f"{artifact.path}: the data fills {sorted(samples[0])} but not input(s) {missing}: "
            "give them in the model card (values, state) or in the .npz samples"
        )
    feeds = tuple({**fill, **s} for s in samples)
    return FeedSet(feeds, "; ".join(described), state=state)


def _random(
    artifact: ModelArtifact,
    count: int,
    seed: int,
    why: str,
    fill: Mapping[str, np.ndarray],
    state: Mapping[str, str],
) -> FeedSet:
    rest = [s for s in artifact.inputs if s.name not in fill]
    feeds = tuple({**feeds_for(rest, seed=seed + i), **fill} for i in range(count))
    return FeedSet(feeds, f"{count} random inputs ({why})", random=True, state=dict(state))


def evaluation_feeds(
    model: ModelArtifact | str | os.PathLike[str],
    source: str | os.PathLike[str] | None = None,
    count: int = 16,
    seed: int = 0,
    role: Role = "evaluation",
    interface: ModelInterface | None = None,
) -> tuple[dict[str, np.ndarray], ...]:
    """The feeds of `feed_set` alone."""
    return feed_set(model, source, count, seed, role, interface).feeds


def mask_reader(
    interface: ModelInterface | None, feeds: FeedSet | None = None
) -> Callable[[np.ndarray], np.ndarray] | None:
    """The function that reads a person mask from a raw output, or None when none applies
    (no mask output, or random feeds: a mask metric on random inputs would mean nothing)."""
    if interface is None or not interface.has_mask or (feeds is not None and feeds.random):
        return None
    return interface.person_probability


def primary_output(
    artifact: ModelArtifact, interface: ModelInterface | None, task: Task | None
) -> str:
    """The output the tensor metrics (max abs, cosine) describe: the mask, the task's, or the
    first."""
    if interface is not None and interface.output_name is not None:
        return interface.output_name
    names = [s.name for s in artifact.outputs]
    for attr in ("output", "boxes_output"):
        name = getattr(task, attr, None)
        if isinstance(name, str) and name in names:
            return name
    return names[0]


def score_samples(
    reference: Sequence[Mapping[str, np.ndarray]],
    candidate: Sequence[Mapping[str, np.ndarray]],
    primary: str,
    task: Task | None = None,
    to_mask: Callable[[np.ndarray], np.ndarray] | None = None,
    random: bool = False,
) -> FidelityMetrics:
    """Compare a candidate's outputs with the reference's, every output of every sample.

    Args:
        reference: The fp32 model's outputs, one mapping per sample (`run_samples`).
        candidate: The variant's, for the same samples.
        primary: The output max/mean abs, cosine and the mask metrics describe.
        task: What the outputs mean; its metric is computed on the decoded outputs (not on
            random inputs, where it would mean nothing).
        to_mask: Reads a person mask from the primary output (see `mask_reader`).
        random: The inputs were random numbers.

    Raises:
        ConfigError: Different sample counts, shapes, or outputs a task cannot read.
    """
    if len(reference) != len(candidate):
        raise ConfigError(
            f"cannot compare {len(candidate)} candidate samples with {len(reference)} references"
        )
    base = compare_outputs(
        [r[primary] for r in reference], [c[primary] for c in candidate], to_mask
    )
    snr = GenericTask().score(reference, candidate)["snr"]
    kind = str(getattr(task, "kind", "generic"))
    found: dict[str, float] = {}
    if task is not None and kind not in ("generic", "segmentation") and not random:
        found = task.score(reference, candidate)
    nan = math.nan
    metrics = replace(
        base,
        task=kind,
        snr=snr,
        f1=found.get("f1", nan),
        nme=found.get("nme", nan),
        text=found.get("text", nan),
        top1=found.get("top1", base.top1),
    )
    if math.isnan(metrics.cosine):
        logger.warning("cosine similarity is NaN: the candidate produced NaN outputs")
    return metrics


def measure_fidelity(
    reference: ModelArtifact | str | os.PathLike[str] | Sequence[Mapping[str, np.ndarray]],
    candidate: ModelArtifact | str | os.PathLike[str],
    feeds: Sequence[Feeds] | FeedSet,
    backend: str = "onnxruntime",
    interface: ModelInterface | None = None,
    card: ModelCard | None = None,
) -> FidelityMetrics:
    """Fidelity of ``candidate`` against ``reference`` (a model, or its `run_samples` outputs).

    Args:
        reference: The fp32 model, or its outputs on ``feeds`` (saves re-running it).
        candidate: The optimized variant.
        feeds: Evaluation inputs (see `feed_set`).
        backend: Backend both models run on.
        interface: How to read the output as a person mask; None: the card's, or none.
        card: The model card (the task, recurrent state); None: the one stored in the model.
    """
    fs = feeds if isinstance(feeds, FeedSet) else None
    samples: Sequence[Feeds] = feeds.feeds if isinstance(feeds, FeedSet) else feeds
    state = fs.state if fs is not None else {}
    cand = candidate if isinstance(candidate, ModelArtifact) else load_onnx(candidate)
    card = card if card is not None else (card_of(cand) or ModelCard())
    interface = interface or card.interface
    if isinstance(reference, (ModelArtifact, str, os.PathLike)):
        ref_out = run_samples(reference, samples, backend, state=state)
    else:
        ref_out = [dict(r) for r in reference]
    got = run_samples(cand, samples, backend, state=state)
    primary = primary_output(cand, interface, card.task)
    random = fs is not None and fs.random
    return score_samples(ref_out, got, primary, card.task, mask_reader(interface, fs), random)


def carried_state(
    model: ModelArtifact | str | os.PathLike[str], feeds: FeedSet, backend: str = "onnxruntime"
) -> FeedSet:
    """``feeds`` with each recurrent input holding the state the model really carries there.

    Calibration treats samples one by one; a stateful model calibrated on zero state would
    learn the ranges of its first window only. Running the fp32 model over the sequence once
    gives every sample the state it meets in use.
    """
    if not feeds.state:
        return feeds
    outs = run_samples(model, feeds.feeds, backend, state=feeds.state)
    carried = [feeds.feeds[0]] + [
        {**f, **{i: outs[k - 1][o] for i, o in feeds.state.items()}}
        for k, f in enumerate(feeds.feeds[1:], 1)
    ]
    return replace(feeds, feeds=tuple(carried))
