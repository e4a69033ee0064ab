"""Images for calibration and evaluation: a folder, a video, or a built-in set; disjoint roles.

Calibration (quantization scales, pruning refits) and evaluation (the fidelity a report
claims) must never share an image, or the report flatters the optimized model. Every source
is split by role:

- a folder of images: calibration takes the even-numbered files (sorted), evaluation the odd;
- a video: calibration takes frames from its first half, evaluation from its second half
  (adjacent frames are near-duplicates, so the halves are kept apart in time);
- the built-in set: real photographs that ship inside installed packages, no download.
  Calibration: scikit-image's ``astronaut`` portrait with crops, flips and brightness changes,
  plus scenes without people (``coffee``, ``rocket``, ``stereo_motorcycle``, ``brick``).
  Evaluation: matplotlib's ``grace_hopper.jpg`` portrait filmed by a moving virtual camera
  (pan, zoom, sway) at brightness from dark (x0.3) to bright, plus other scenes without people
  (``chelsea``, ``hubble_deep_field``, ``gravel``) and an all-black frame. So a
  model is scored on a person it was not calibrated on, and on frames with nobody in them.

`ImageSet.source` says what was used, for reports. Images are RGB uint8.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from edgeopt.errors import ConfigError, ModelLoadError

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "ImageSet",
    "Role",
    "camera_frame",
    "is_tensor_folder",
    "load_images",
    "load_tensors",
    "portraits",
]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v"})
Role = Literal["calibration", "evaluation"]


@dataclass(frozen=True)
class ImageSet:
    """Images for one role, and where they came from.

    Attributes:
        images: RGB uint8 images.
        source: What they are, for reports (e.g. ``"video clip.mp4, frames 150-299"``).
    """

    images: list[np.ndarray]
    source: str


def portraits() -> list[np.ndarray]:
    """The two public-domain portraits, RGB uint8: astronaut (512x512), Grace Hopper (600x512).

    Raises:
        ConfigError: scikit-image or matplotlib's sample data is missing.
    """
    try:
        import matplotlib.cbook
        import skimage.data
    except ImportError as e:
        raise ConfigError(
            "the built-in images need scikit-image and matplotlib (pip install scikit-image "
            "matplotlib), or give a folder of images or a video"
        ) from e
    astronaut = np.asarray(skimage.data.astronaut())  # type: ignore[no-untyped-call]
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    hopper = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if hopper is None:  # matplotlib ships it; only a broken install lacks it
        raise ConfigError(f"{path}: matplotlib's sample image grace_hopper.jpg is unreadable")
    return [np.ascontiguousarray(astronaut), np.ascontiguousarray(hopper[..., ::-1])]


def _scenes(names: tuple[str, ...]) -> list[np.ndarray]:
    import skimage.data

    out = []
    for name in names:
        loaded = getattr(skimage.data, name)()
        image = np.asarray(loaded[0] if isinstance(loaded, tuple) else loaded)
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        out.append(np.ascontiguousarray(image[..., :3].astype(np.uint8)))
    return out


def camera_frame(image: np.ndarray, t: float, size: tuple[int, int]) -> np.ndarray:
    """One frame of a virtual camera over ``image`` at phase ``t`` in [0, 1).

    The window has the output's aspect, zooms between 100% and 80%, pans across the photo and
    sways by up to 3 degrees (a subpixel affine warp): deterministic for the same arguments.
    """
    height, width = size
    ih, iw = image.shape[:2]
    aspect = width / height
    zoom = 0.9 + 0.1 * math.cos(2 * math.pi * t)
    ww = zoom * min(iw, ih * aspect)
    wh = ww / aspect
    cx = iw / 2 + (iw - ww) / 2 * math.sin(2 * math.pi * t)
    # Portraits have the face in the upper half: sway between the top and a little lower.
    cy = wh / 2 + (ih - wh) * 0.3 * (0.5 + 0.5 * math.sin(4 * math.pi * t + 0.5))
    angle = 3.0 * math.sin(2 * math.pi * t)
    m = cv2.getRotationMatrix2D((cx, cy), angle, width / ww)
    m[0, 2] += width / 2 - cx
    m[1, 2] += height / 2 - cy
    return cv2.warpAffine(
        image, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101
    )


def _augment(image: np.ndarray, rng: np.random.Generator, dark: float = 0.6) -> np.ndarray:
    """A random crop (60-100% of each side), a horizontal flip, and a brightness change."""
    h, w = image.shape[:2]
    ch, cw = int(h * rng.uniform(0.6, 1.0)), int(w * rng.uniform(0.6, 1.0))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    out = image[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        out = out[:, ::-1]
    gain = rng.uniform(dark, 1.4)
    return np.asarray(np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8))


def _builtin(role: Role, count: int, seed: int) -> ImageSet:
    rng = np.random.default_rng(seed)
    astronaut, hopper = portraits()
    if role == "calibration":
        scenes = _scenes(("coffee", "rocket", "stereo_motorcycle", "brick"))
        people = [_augment(astronaut, rng) for _ in range(max(1, (count * 3) // 4))]
        images = (people + [_augment(s, rng) for s in scenes])[:count]
        what = "astronaut portrait (augmented) + coffee, rocket, stereo_motorcycle, brick"
        return ImageSet(images, f"built-in calibration set: {what}")
    scenes = _scenes(("chelsea", "hubble_deep_field", "gravel"))
    scenes.append(np.zeros((480, 640, 3), np.uint8))
    n_people = max(1, count - len(scenes))
    people = []
    for i in range(n_people):
        frame = camera_frame(hopper, i / n_people, (480, 640))
        gain = 0.3 + 1.1 * ((i * 7) % n_people) / max(1, n_people - 1)
        people.append(np.clip(frame.astype(np.float32) * gain, 0, 255).astype(np.uint8))
    images = (people + scenes)[:count] if count > len(scenes) else (people + scenes)[-count:]
    what = (
        "Grace Hopper portrait through a moving camera, brightness x0.3-x1.4 + chelsea, "
        "hubble_deep_field, gravel, a black frame"
    )
    return ImageSet(images, f"built-in evaluation set: {what}")


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ModelLoadError(f"{path}: not a readable image; remove it from the folder")
    return np.ascontiguousarray(image[..., ::-1])


def _read_video(path: Path, count: int, role: Role) -> ImageSet:
    cap = cv2.VideoCapture(str(path))
    try:
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if not cap.isOpened() or total <= 1:
            raise ModelLoadError(f"{path}: OpenCV cannot read frames from this video")
        half = total // 2
        lo, hi = (0, half - 1) if role == "calibration" else (half, total - 1)
        frames = []
        for index in np.linspace(lo, hi, num=min(count, hi - lo + 1)).astype(int):
            cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
            ok, frame = cap.read()
            if ok:
                frames.append(np.ascontiguousarray(frame[..., ::-1]))
    finally:
        cap.release()
    if not frames:
        raise ModelLoadError(f"{path}: no frame could be decoded")
    return ImageSet(frames, f"video {path.name}, {len(frames)} frames from {lo} to {hi}")


def load_images(
    source: str | os.PathLike[str] | None = None,
    count: int = 16,
    role: Role = "evaluation",
    seed: int = 0,
) -> ImageSet:
    """RGB uint8 images for one role; calibration and evaluation never share an image.

    Args:
        source: ``None`` or ``"builtin"`` for the built-in sets, a folder of images, or a
            video file (see the module docstring for how each is split).
        count: How many images to return (at most).
        role: ``"calibration"`` or ``"evaluation"``.
        seed: Seed of the built-in augmentations.

    Raises:
        ConfigError: The source does not exist or holds no images.
        ModelLoadError: An image or the video cannot be decoded.
    """
    if count < 1:
        raise ConfigError(f"image count must be at least 1, got {count}")
    if source is None or str(source) == "builtin":
        return _builtin(role, count, seed)
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ConfigError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        if len(files) < 2:
            raise ConfigError(
                f"{path}: one image cannot give disjoint calibration and evaluation sets; "
                "add images"
            )
        mine = files[0::2] if role == "calibration" else files[1::2]
        return ImageSet(
            [_read_image(p) for p in mine[:count]],
            f"folder {path}, {min(count, len(mine))} of its {len(files)} images ({role} half)",
        )
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return _read_video(path, count, role)
    raise ConfigError(
        f"image source {str(source)!r} is neither 'builtin', a folder of images, nor a video"
    )


def is_tensor_folder(source: str | os.PathLike[str] | None) -> bool:
    """Whether ``source`` is a folder of ``.npz`` samples (see `load_tensors`)."""
    return source is not None and Path(source).is_dir() and any(Path(source).glob("*.npz"))


def load_tensors(
    source: str | os.PathLike[str], count: int = 16, role: Role = "evaluation"
) -> tuple[list[dict[str, np.ndarray]], str]:
    """Samples from a folder of ``.npz`` files, one sample per file, arrays named by input.

    Files are taken in sorted order, calibration the even-numbered ones and evaluation the
    odd ones, as for a folder of images. ``.npz`` files are read without pickle (no code runs).

    Returns:
        The samples and a description for reports.

    Raises:
        ConfigError: Fewer than two files. ModelLoadError: a file that is no plain ``.npz``.
    """
    folder = Path(source)
    files = sorted(folder.glob("*.npz"))
    if len(files) < 2:
        raise ConfigError(
            f"{folder}: {len(files)} .npz file(s) cannot give disjoint calibration and "
            "evaluation sets; add samples (one .npz per sample, arrays named by input)"
        )
    mine = (files[0::2] if role == "calibration" else files[1::2])[:count]
    samples = []
    for path in mine:
        try:
            with np.load(path, allow_pickle=False) as z:
                samples.append({k: np.asarray(z[k]) for k in z.files})
        except (OSError, ValueError, EOFError) as e:
            raise ModelLoadError(f"{path}: not a readable .npz of plain arrays: {e}") from e
    return samples, f"tensors {folder}, {len(samples)} of its {len(files)} .npz files ({role} half)"
