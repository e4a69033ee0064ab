"""Fidelity: how far an optimized variant's outputs are from its fp32 reference, on real images.

Every optimization pass is paid for with some loss of fidelity; this module measures it. It
builds evaluation inputs the way the model's own pre-processing does (RGB, resized to the
model's input size, float32 in [0, 1], NHWC for the MediaPipe models, NCHW where the input
says so) from a folder of images, a video, or a built-in set made from the two public-domain
portraits that ship with scikit-image (``astronaut``) and matplotlib (``grace_hopper.jpg``),
augmented with crops, flips and brightness changes so a handful of photos gives a varied set.

Metrics (`compare_outputs`): max and mean absolute error, cosine similarity, and for
segmentation masks the IoU of the masks thresholded at 0.5 (mean and worst sample) and the
boundary F-score (precision/recall of mask-boundary pixels within a small tolerance, as in the
DAVIS benchmark). The metrics are a few lines of numpy each; no maintained library computes
this exact set on raw arrays without pulling in a training framework, so they are written here.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgeopt.artifact import ModelArtifact, load_onnx
from edgeopt.errors import ConfigError, ModelLoadError

__all__ = [
    "FidelityMetrics",
    "Preprocessing",
    "boundary_f_score",
    "builtin_images",
    "compare_outputs",
    "evaluation_feeds",
    "load_images",
    "mask_iou",
    "measure",
    "preprocess",
    "preprocessing_for",
    "run_outputs",
]

log = logging.getLogger(__name__)

Feeds = Mapping[str, np.ndarray]
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
_VIDEO_SUFFIXES = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"}

LOWER_IS_BETTER = frozenset({"max_abs", "mean_abs"})
"""Metrics where smaller is better; the others (IoU, cosine, F-score) are better when larger."""


@dataclass(frozen=True)
class FidelityMetrics:
    """A variant's outputs compared with its reference over a set of inputs.

    Attributes:
        max_abs: Largest absolute difference over every output element.
        mean_abs: Mean absolute difference.
        cosine: Cosine similarity of the flattened outputs (mean over samples).
        iou: Mean IoU of the masks thresholded at 0.5 (1.0 where both masks are empty).
        iou_min: The worst sample's IoU.
        boundary_f: Mean boundary F-score of the masks (tolerance in pixels: see `compare_outputs`).
        samples: How many inputs were compared.
    """

    max_abs: float
    mean_abs: float
    cosine: float
    iou: float
    iou_min: float
    boundary_f: float
    samples: int

    def value(self, metric: str) -> float:
        """The value of one metric by name (``iou``, ``iou_min``, ``cosine``, ...).

        Raises:
            ConfigError: No such metric.
        """
        values = asdict(self)
        if metric not in values or metric == "samples":
            known = ", ".join(k for k in values if k != "samples")
            raise ConfigError(f"unknown fidelity metric {metric!r}; known metrics: {known}")
        return float(values[metric])

    def meets(self, metric: str, threshold: float) -> bool:
        """Whether ``metric`` is at least (or, for errors, at most) ``threshold``."""
        v = self.value(metric)
        return v <= threshold if metric in LOWER_IS_BETTER else v >= threshold

    def to_dict(self) -> dict[str, float | int]:
        """The metrics as a JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class Preprocessing:
    """How images become a model's input tensor.

    Attributes:
        input_name: The model input fed with the image.
        size: (height, width) of the input.
        layout: ``"nhwc"`` or ``"nchw"``.
    """

    input_name: str
    size: tuple[int, int]
    layout: Literal["nhwc", "nchw"]


def preprocessing_for(model: ModelArtifact) -> Preprocessing:
    """The image pre-processing a model's first input implies (shape [1,H,W,3] or [1,3,H,W]).

    Raises:
        ConfigError: The model's first input is not a static RGB image tensor.
    """
    if not model.inputs:
        raise ConfigError(f"{model.path}: the model has no inputs to feed images to")
    spec = model.inputs[0]
    shape = spec.shape
    if len(shape) == 4 and all(isinstance(d, int) for d in shape[1:]):
        if shape[3] == 3:
            return Preprocessing(spec.name, (int(shape[1] or 0), int(shape[2] or 0)), "nhwc")
        if shape[1] == 3:
            return Preprocessing(spec.name, (int(shape[2] or 0), int(shape[3] or 0)), "nchw")
    raise ConfigError(
        f"{model.path}: input {spec.name!r} has shape {list(shape)}, not an RGB image "
        "([1,H,W,3] or [1,3,H,W]); use random feeds (source='random') for this model"
    )


def _resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    h, w = size
    return np.asarray(Image.fromarray(image).resize((w, h), Image.Resampling.BILINEAR))


def preprocess(image: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """An RGB uint8 image [H,W,3] as the model's input: resized, float32 in [0,1], batch of 1."""
    rgb = image[..., :3] if image.ndim == 3 else np.stack([image] * 3, axis=-1)
    x = _resize(np.ascontiguousarray(rgb.astype(np.uint8)), prep.size).astype(np.float32) / 255.0
    if prep.layout == "nchw":
        x = x.transpose(2, 0, 1)
    return np.ascontiguousarray(x[None])


def builtin_images() -> list[np.ndarray]:
    """The two public-domain portraits shipped by scikit-image and matplotlib, RGB uint8.

    Raises:
        ConfigError: scikit-image is not installed.
    """
    try:
        from skimage import data
    except ImportError as e:
        raise ConfigError(
            "the built-in evaluation set needs scikit-image (pip install scikit-image), "
            "or give a folder of images or a video"
        ) from e
    import matplotlib.cbook
    from PIL import Image

    hopper_path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(hopper_path) as im:
        hopper = np.asarray(im.convert("RGB"))
    astronaut = np.asarray(data.astronaut())  # type: ignore[no-untyped-call]
    return [astronaut, hopper]


def _augment(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop (60-100% of each side), a horizontal flip, and a brightness change."""
    h, w = image.shape[:2]
    ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = image[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    gain = rng.uniform(0.6, 1.4)
    return np.asarray(np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8))


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError) as e:
        raise ModelLoadError(
            f"{path}: not a readable image ({e}); remove it from the folder"
        ) from e


def _read_video(path: Path, count: int) -> list[np.ndarray]:
    try:
        import cv2
    except ImportError as e:
        raise ConfigError(
            f"reading the video {path} needs OpenCV (pip install opencv-python-headless)"
        ) from e
    cap = cv2.VideoCapture(str(path))
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if not cap.isOpened() or total <= 0:
            raise ModelLoadError(f"{path}: OpenCV cannot read frames from this video")
        frames = []
        for index in np.linspace(0, total - 1, num=min(count, total)).astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = cap.read()
            if ok:
                frames.append(np.ascontiguousarray(frame[..., ::-1]))
    finally:
        cap.release()
    if not frames:
        raise ModelLoadError(f"{path}: no frame could be decoded")
    return frames


def load_images(
    source: str | os.PathLike[str] | None = None, count: int = 16, seed: int = 0
) -> list[np.ndarray]:
    """RGB uint8 images for calibration or evaluation.

    Args:
        source: ``None`` or ``"builtin"`` for the built-in portraits (augmented), a folder of
            images (sorted, the first ``count``), or a video file (``count`` frames spread evenly).
        count: How many images to return (at most).
        seed: Seed of the augmentations of the built-in set (use different seeds for the
            calibration and evaluation sets so they do not share images).

    Raises:
        ConfigError: The source does not exist or holds no images.
        ModelLoadError: An image or the video cannot be decoded.
    """
    if count < 1:
        raise ConfigError(f"image count must be at least 1, got {count}")
    if source is None or str(source) == "builtin":
        rng = np.random.default_rng(seed)
        base = builtin_images()
        return [_augment(base[i % len(base)], rng) for i in range(count)]
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"{path}: no images ({', '.join(sorted(_IMAGE_SUFFIXES))}) found")
        return [_read_image(p) for p in files[:count]]
    if path.is_file() and path.suffix.lower() in _VIDEO_SUFFIXES:
        return _read_video(path, count)
    if path.is_file() and path.suffix.lower() in _IMAGE_SUFFIXES:
        return [_read_image(path)]
    raise ConfigError(
        f"evaluation source {str(source)!r} is neither 'builtin', a folder of images, nor a video"
    )


def evaluation_feeds(
    model: ModelArtifact | str | os.PathLike[str],
    source: str | os.PathLike[str] | None = None,
    count: int = 16,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], ...]:
    """Feeds for ``model`` made from real images through its pre-processing.

    ``source="random"`` gives uniform random feeds in [0,1] instead, for models that do not
    take images (tiny test graphs).

    Args:
        model: The model (its first input decides size and layout).
        source: See `load_images`, or ``"random"``.
        count: Number of feeds.
        seed: Seed of the augmentations (or of the random feeds).
    """
    artifact = model if isinstance(model, ModelArtifact) else load_onnx(model)
    if source is not None and str(source) == "random":
        from edgeopt.backends.base import random_feeds

        return tuple(random_feeds(artifact.inputs, seed=seed + i) for i in range(count))
    prep = preprocessing_for(artifact)
    return tuple({prep.input_name: preprocess(im, prep)} for im in load_images(source, count, seed))


def mask_iou(reference: np.ndarray, candidate: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of two probability maps thresholded at ``threshold``; 1.0 when both are empty."""
    a, b = reference > threshold, candidate > threshold
    union = int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum()) / union


def _as_masks(x: np.ndarray) -> np.ndarray:
    """Outputs [N,H,W,1], [N,1,H,W], [H,W,1], [H,W] ... as a stack of 2-D maps."""
    a = np.asarray(x)
    if a.ndim == 3 and a.shape[-1] == 1:  # one [H,W,1] map, not H maps of [W,1]
        a = a[..., 0]
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    elif a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 2:
        a = a[None]
    return a.reshape(-1, a.shape[-2], a.shape[-1])


def _shift_or(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)^2 square, in numpy."""
    out = mask.copy()
    h, w = mask.shape
    p = np.pad(mask, radius)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            out |= p[dy : dy + h, dx : dx + w]
    return out


def _boundary(mask: np.ndarray) -> np.ndarray:
    inner = ~_shift_or(~mask, 1)  # erosion by 3x3 = complement of the dilated complement
    return np.asarray(mask & ~inner)


def boundary_f_score(
    reference: np.ndarray, candidate: np.ndarray, threshold: float = 0.5, tolerance: int = 2
) -> float:
    """Boundary F-score of two 2-D probability maps (DAVIS style).

    Boundary pixels of each thresholded mask count as matched when the other mask has a
    boundary pixel within ``tolerance`` pixels (Chebyshev distance). 1.0 when neither has one.
    """
    a, b = _boundary(reference > threshold), _boundary(candidate > threshold)
    na, nb = int(a.sum()), int(b.sum())
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    precision = float((b & _shift_or(a, tolerance)).sum()) / nb
    recall = float((a & _shift_or(b, tolerance)).sum()) / na
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def compare_outputs(
    reference: Sequence[np.ndarray],
    candidate: Sequence[np.ndarray],
    threshold: float = 0.5,
    tolerance: int = 2,
) -> FidelityMetrics:
    """Compare a variant's outputs with the reference's, sample by sample.

    Args:
        reference: One output array per input (the fp32 model's).
        candidate: The variant's outputs for the same inputs, same shapes.
        threshold: Mask threshold for IoU and boundary F-score.
        tolerance: Boundary match tolerance in pixels.

    Raises:
        ConfigError: Different numbers of samples or different shapes.
    """
    if len(reference) != len(candidate) or not reference:
        raise ConfigError(
            f"cannot compare {len(candidate)} candidate outputs with {len(reference)} references"
        )
    max_abs, abs_sum, n_el = 0.0, 0.0, 0
    cosines, ious, bfs = [], [], []
    for ref, cand in zip(reference, candidate, strict=True):
        r = np.asarray(ref, dtype=np.float64)
        c = np.asarray(cand, dtype=np.float64)
        if r.shape != c.shape:
            raise ConfigError(f"output shapes differ: reference {r.shape}, candidate {c.shape}")
        diff = np.abs(r - c)
        max_abs = max(max_abs, float(diff.max(initial=0.0)))
        abs_sum += float(diff.sum())
        n_el += diff.size
        denom = float(np.linalg.norm(r) * np.linalg.norm(c))
        cosines.append(float((r * c).sum()) / denom if denom > 0 else float(np.allclose(r, c)))
        for rm, cm in zip(_as_masks(r), _as_masks(c), strict=True):
            ious.append(mask_iou(rm, cm, threshold))
            bfs.append(boundary_f_score(rm, cm, threshold, tolerance))
    return FidelityMetrics(
        max_abs=max_abs,
        mean_abs=abs_sum / max(n_el, 1),
        cosine=float(np.mean(cosines)),
        iou=float(np.mean(ious)),
        iou_min=float(np.min(ious)),
        boundary_f=float(np.mean(bfs)),
        samples=len(reference),
    )


def run_outputs(
    model: ModelArtifact | str | os.PathLike[str],
    feeds: Sequence[Feeds],
    backend: str = "onnxruntime",
    options: Mapping[str, Any] | None = None,
    output: str | None = None,
) -> list[np.ndarray]:
    """Run ``model`` on every feed; returns one output (``output``, else the first) per feed."""
    from edgeopt._api import compile

    compiled = compile(model, backend, options)
    name = output or compiled.outputs[0].name
    return [compiled.run(f)[name] for f in feeds]


def measure(
    reference: ModelArtifact | str | os.PathLike[str] | Sequence[np.ndarray],
    candidate: ModelArtifact | str | os.PathLike[str],
    feeds: Sequence[Feeds],
    backend: str = "onnxruntime",
) -> FidelityMetrics:
    """Fidelity of ``candidate`` against ``reference`` (a model, or its precomputed outputs).

    Args:
        reference: The fp32 model, or its outputs on ``feeds`` (saves re-running it).
        candidate: The optimized variant.
        feeds: Evaluation inputs (see `evaluation_feeds`).
        backend: Backend both models run on.
    """
    if isinstance(reference, (ModelArtifact, str, os.PathLike)):
        ref_out = run_outputs(reference, feeds, backend)
    else:
        ref_out = list(reference)
    metrics = compare_outputs(ref_out, run_outputs(candidate, feeds, backend))
    if math.isnan(metrics.cosine):
        log.warning("cosine similarity is NaN: the candidate produced NaN outputs")
    return metrics
