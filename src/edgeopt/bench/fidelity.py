"""Fidelity: how far an optimized variant's outputs are from its fp32 reference, on real data.

Every optimization pass is paid for with some loss of fidelity; this module measures it, through
the model's `ModelInterface` (the same pre- and post-processing the app runs):

- inputs: real images (`edgeopt.data`: a folder, a video, or the built-in sets; calibration and
  evaluation never share an image) through `ModelInterface.preprocess`;
- metrics (`edgeopt.metrics`): for a mask output, IoU and boundary F on the person probability
  the interface reads (sigmoid/softmax/logits and the person channel taken into account);
  otherwise output errors only (max/mean abs, cosine, top-1 agreement). Raw outputs are never
  thresholded as if they were probabilities.

When a model has no image input (or the caller asks for it) the feeds are random: that is a
warning, the `FeedSet` says so, and no mask metric is claimed on random inputs.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgeopt.artifact import ModelArtifact, load_onnx
from edgeopt.data import Role, load_images
from edgeopt.errors import ConfigError
from edgeopt.interface import ModelInterface, infer_interface
from edgeopt.metrics import FidelityMetrics, boundary_f_score, compare_outputs, mask_iou
from edgeopt.registry import run_outputs

__all__ = [
    "FeedSet",
    "FidelityMetrics",
    "boundary_f_score",
    "compare_outputs",
    "evaluation_feeds",
    "feed_set",
    "mask_iou",
    "mask_reader",
    "measure_fidelity",
    "run_outputs",
]

logger = logging.getLogger(__name__)

Feeds = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class FeedSet:
    """Feeds for calibration or evaluation, and what they are.

    Attributes:
        feeds: One mapping input name -> tensor per sample.
        source: Where they came from, for reports.
        random: True when they are random numbers, not images (no mask metric is valid then).
    """

    feeds: tuple[dict[str, np.ndarray], ...]
    source: str
    random: bool = False


def _random(artifact: ModelArtifact, count: int, seed: int, why: str) -> FeedSet:
    from edgeopt.backends.base import random_feeds

    feeds = tuple(random_feeds(artifact.inputs, seed=seed + i) for i in range(count))
    return FeedSet(feeds, f"{count} random inputs ({why})", random=True)


def feed_set(
    model: ModelArtifact | str | os.PathLike[str],
    source: str | os.PathLike[str] | None = None,
    count: int = 16,
    seed: int = 0,
    role: Role = "evaluation",
    interface: ModelInterface | None = None,
) -> FeedSet:
    """Feeds for ``model`` made from real images through its interface.

    Args:
        model: The model.
        source: ``"builtin"`` / None, a folder, a video (see `edgeopt.data.load_images`),
            ``"random"``, or ``"auto"`` (built-in images for image models, else random).
        count: Number of feeds.
        seed: Seed of the built-in augmentations (or of the random feeds).
        role: ``"calibration"`` or ``"evaluation"``: the two never share an image.
        interface: The model's interface (inferred from the graph when None).

    Raises:
        ConfigError: Images asked for a model that does not take images.
    """
    artifact = model if isinstance(model, ModelArtifact) else load_onnx(model)
    if source is not None and str(source) == "random":
        return _random(artifact, count, seed, "asked for")
    interface = interface or infer_interface(artifact)
    if interface is None:
        if source is not None and str(source) == "auto":
            logger.warning(
                "%s does not take an RGB image [1,H,W,3] or [1,3,H,W]: fidelity is measured "
                "on random inputs (give --data and the interface flags to measure real data)",
                artifact.path,
            )
            return _random(artifact, count, seed, "the model does not take images")
        raise ConfigError(
            f"{artifact.path}: input {artifact.inputs[0].name if artifact.inputs else None!r} "
            "is not an RGB image ([1,H,W,3] or [1,3,H,W]); use source='random' for this model"
        )
    images = load_images(None if str(source) == "auto" else source, count, role, seed)
    feeds = tuple({interface.input_name: interface.preprocess(im, "RGB")} for im in images.images)
    return FeedSet(feeds, f"{len(feeds)} images: {images.source}")


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


def measure_fidelity(
    reference: ModelArtifact | str | os.PathLike[str] | Sequence[np.ndarray],
    candidate: ModelArtifact | str | os.PathLike[str],
    feeds: Sequence[Feeds] | FeedSet,
    backend: str = "onnxruntime",
    interface: ModelInterface | None = None,
) -> FidelityMetrics:
    """Fidelity of ``candidate`` against ``reference`` (a model, or its precomputed outputs).

    Args:
        reference: The fp32 model, or its outputs on ``feeds`` (saves re-running it).
        candidate: The optimized variant.
        feeds: Evaluation inputs (see `feed_set`).
        backend: Backend both models run on.
        interface: How to read the output as a person mask; None: output metrics only.
    """
    fs = feeds if isinstance(feeds, FeedSet) else None
    samples: Sequence[Feeds] = feeds.feeds if isinstance(feeds, FeedSet) else feeds
    output = interface.output_name if interface is not None else None
    if isinstance(reference, (ModelArtifact, str, os.PathLike)):
        ref_out = run_outputs(reference, samples, backend, output=output)
    else:
        ref_out = list(reference)
    got = run_outputs(candidate, samples, backend, output=output)
    metrics = compare_outputs(ref_out, got, mask_reader(interface, fs))
    if math.isnan(metrics.cosine):
        logger.warning("cosine similarity is NaN: the candidate produced NaN outputs")
    return metrics
