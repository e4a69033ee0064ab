"""Compositing a frame over a new background with a person mask: blur, replace, remove, mask.

All work is in uint8 into reused buffers. The alpha blend
``out = fg * a/255 + bg * (1 - a/255)`` is one fused pass (`kernels.blend_into`). The
background blur is computed on a grid 1/8 of the frame (for the default sigma 12) from
background pixels only (a normalized convolution by the inverse mask), so the person's colours
do not bleed into the background around the outline (the "halo" users of such effects report),
and upscaled bilinearly inside the blend pass (`kernels.blend_over_grid`).

Effects:
    - ``blur[:SIGMA]``: the background blurred (sigma in frame pixels, default 12).
    - ``replace:FILE``: an image or a video (looped) as the background, resized to cover the
      frame and centre-cropped.
    - ``remove[:COLOR]``: the background made transparent (a 4-channel frame's alpha is the
      mask) or, with a key colour (``green``, ``#00ff00``, ``0,255,0``) or on 3-channel
      output, filled with that colour (default green).
    - ``mask``: the mask itself, grey, for debugging.
    - ``none``: the frame unchanged (measures everything but compositing).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.apps.background.cellmax import CellMaxCache
from edgeopt.apps.background.errors import VideoError
from edgeopt.apps.background.kernels import blend_into, blend_over_grid, warm_up
from edgeopt.apps.background.segmenter import Order
from edgeopt.errors import ConfigError

__all__ = [
    "Compositor",
    "EffectOptions",
    "blend",
    "cover_resize",
    "effect_from_args",
    "parse_color",
    "parse_effect",
]

_BLOCK = np.ones((3, 3), np.uint8)
_VIDEO_SUFFIXES = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v"}
_COLORS = {
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "magenta": (255, 0, 255),
}


def blend(
    fg: np.ndarray, bg: np.ndarray, mask: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """``fg * mask/255 + bg * (1 - mask/255)`` for HxWx3 uint8 images and an HxW uint8 mask,
    rounded (within half a level of the float formula).

    Args:
        fg: The foreground (the camera frame).
        bg: The background, same shape.
        mask: Person mask, 255 = foreground.
        out: Where to write the result (may be ``fg`` or ``bg`` itself); None: a new array.
    """
    return blend_into(np.empty_like(fg) if out is None else out, fg, bg, mask)


class EffectOptions(BaseModel):
    """What to do with the background."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    effect: Literal["blur", "replace", "remove", "mask", "none"] = Field(
        default="blur", description="The effect applied to the background."
    )
    blur: float = Field(
        default=12.0, gt=0.0, le=200.0, description="Blur strength: Gaussian sigma, frame pixels."
    )
    background: str | None = Field(
        default=None, description="Image or video file that replaces the background (replace)."
    )
    key: tuple[int, int, int] | None = Field(
        default=None,
        description="Key colour (R, G, B) that fills a removed background; None: alpha channel "
        "on 4-channel frames, green on 3-channel ones.",
    )


def parse_color(text: str) -> tuple[int, int, int]:
    """An (R, G, B) colour from a name, ``#rrggbb`` or ``r,g,b``.

    Raises:
        ConfigError: Not a colour.
    """
    t = text.strip().lower()
    if t in _COLORS:
        return _COLORS[t]
    try:
        if t.startswith("#") and len(t) == 7:
            return (int(t[1:3], 16), int(t[3:5], 16), int(t[5:7], 16))
        parts = [int(p) for p in t.split(",")]
    except ValueError as e:
        raise ConfigError(f"colour {text!r}: use a name, #rrggbb or r,g,b") from e
    if len(parts) != 3 or not all(0 <= p <= 255 for p in parts):
        raise ConfigError(f"colour {text!r}: use a name ({', '.join(_COLORS)}), #rrggbb or r,g,b")
    return (parts[0], parts[1], parts[2])


def parse_effect(spec: str) -> EffectOptions:
    """Effect options from a command-line spec: ``blur[:SIGMA]``, ``replace:FILE``,
    ``remove[:COLOR]``, ``mask`` or ``none``.

    Raises:
        ConfigError: An unknown effect, a bad value, or ``replace`` without a file.
    """
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    if name == "blur":
        try:
            return EffectOptions(effect="blur", blur=float(arg) if arg else 12.0)
        except ValueError as e:
            raise ConfigError(
                f"effect {spec!r}: blur takes a sigma in (0, 200], e.g. blur:12"
            ) from e
    if name == "replace":
        if not arg:
            raise ConfigError(f"effect {spec!r}: give the background file, e.g. replace:beach.jpg")
        return EffectOptions(effect="replace", background=arg)
    if name == "remove":
        return EffectOptions(effect="remove", key=parse_color(arg) if arg else None)
    if name in ("mask", "none"):
        return EffectOptions(effect="mask" if name == "mask" else "none")
    raise ConfigError(
        f"unknown effect {spec!r}: use blur[:SIGMA], replace:FILE, remove[:COLOR], mask or none"
    )


def cover_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``image`` to cover (height, width) and centre-crop it to exactly that size."""
    height, width = size
    ih, iw = image.shape[:2]
    scale = max(width / iw, height / ih)
    nw, nh = max(width, round(iw * scale)), max(height, round(ih * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    x, y = (nw - width) // 2, (nh - height) // 2
    return np.ascontiguousarray(resized[y : y + height, x : x + width])


class _Background:
    """A replacement background: one image, or a video read in a loop, sized to each frame."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"background {path!r}: no such file")
        self._cache: dict[tuple[int, int, bool], np.ndarray] = {}
        self._video: cv2.VideoCapture | None = None
        if self.path.suffix.lower() in _VIDEO_SUFFIXES:
            self._video = cv2.VideoCapture(str(self.path))
            if not self._video.isOpened():
                raise VideoError(f"background video {path!r} cannot be opened: not a video?")
            self._image: np.ndarray | None = None
        else:
            self._image = cv2.imread(str(self.path), cv2.IMREAD_COLOR)
            if self._image is None:
                raise ConfigError(f"background {path!r} is not an image OpenCV can read")

    def frame(self, size: tuple[int, int], rgb: bool) -> np.ndarray:
        if self._video is not None:
            ok, img = self._video.read()
            if not ok:  # loop the background video
                self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, img = self._video.read()
                if not ok:
                    raise VideoError(f"background video {str(self.path)!r} has no readable frame")
            out = cover_resize(img, size)
            return cv2.cvtColor(out, cv2.COLOR_BGR2RGB) if rgb else out
        key = (size[0], size[1], rgb)
        if key not in self._cache:
            assert self._image is not None  # set in __init__ when there is no video
            out = cover_resize(self._image, size)
            self._cache[key] = cv2.cvtColor(out, cv2.COLOR_BGR2RGB) if rgb else out
        return self._cache[key]


class Compositor:
    """Applies one background effect to frames, given their person masks.

    Args:
        options: The effect and its parameters.

    Raises:
        ConfigError: ``replace`` without a readable background file.
    """

    def __init__(self, options: EffectOptions | None = None) -> None:
        self.options = options or EffectOptions()
        self._background: _Background | None = None
        if self.options.effect == "replace":
            if not self.options.background:
                raise ConfigError("effect 'replace' needs a background image or video file")
            self._background = _Background(self.options.background)
        self._solid: dict[tuple[int, int, str], np.ndarray] = {}
        self._buffers: dict[str, np.ndarray] = {}
        self._cell_max = CellMaxCache()
        if self.options.effect in ("blur", "replace", "remove"):
            warm_up()  # the blend's machine code, before the first frame

    def _scratch(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A uint8 work buffer reused across frames of the same size (a fresh multi-megabyte
        array per frame costs page faults: 6 ms per 720p blend instead of 0.8 ms)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self._buffers[name] = np.empty(shape, np.uint8)
        return buf

    def _blurred(
        self, frame: np.ndarray, mask: np.ndarray, small: np.ndarray | None
    ) -> tuple[np.ndarray, bool]:
        """The background blurred from background pixels only (no halo), and whether it is reduced.

        ``blur(frame * b) / blur(b)`` with ``b`` the background weight (a normalized
        convolution): each output pixel averages the *background* pixels near it, so the
        person's colours never bleed into the background around the outline, as they do when
        the whole frame is blurred and then blended. It all runs on a grid 1/f of the frame's
        size (f = 2, 4, 8, ... while the blur left stays at 1.5 grid pixels or more: f = 8 for
        the default sigma 12), where it is nearly free: the frame is sampled down by two
        bilinear resizes (each grid pixel averages 16 of its f x f frame pixels, spread over it:
        0.1 ms at 720p, where ``pyrDown`` to 1/8 costs 0.4 ms and ``INTER_AREA`` 0.6 ms), a grid
        pixel counts as background only when the mask is <= 5 over every frame pixel it reads
        and its neighbours' (the mask's maximum per cell, from the model-resolution mask
        through `cellmax.CellMaxCache`), and the blurred grid is upscaled by the blend. Where no
        background pixel is near (deep inside the person, hidden by the blend) the ratio is left
        as it falls.
        """
        h, w = frame.shape[:2]
        sigma = self.options.blur
        levels = 0
        while sigma / 2 ** (levels + 1) >= 1.5 and min(h, w) / 2 ** (levels + 1) >= 32:
            levels += 1
        f = 2**levels
        grid = (max(1, round(h / f)), max(1, round(w / f)))
        if levels == 0:
            reduced = frame
        else:  # each cell: the mean of the 2x2 frame pixels at its centre
            reduced = cv2.resize(frame, grid[::-1], interpolation=cv2.INTER_LINEAR)
        if small is not None:
            person = self._cell_max(small, (h, w), grid)
        elif levels == 0:
            person = mask
        else:  # the maximum over each cell (and a pixel around): a dilation, sampled
            grown = cv2.dilate(mask, np.ones((f + 2, f + 2), np.uint8))
            person = cv2.resize(grown, grid[::-1], interpolation=cv2.INTER_NEAREST)
        b = cv2.erode((person <= 5).view(np.uint8), _BLOCK)
        s = max(0.5, float(np.sqrt(max(sigma**2 - 0.25 * (levels > 0), 0.25))) / f)
        # OpenCV calls with no numpy broadcasting in between: 0.25 instead of 0.33 ms at 720p.
        den = cv2.GaussianBlur(b.astype(np.float32), (0, 0), s)
        np.maximum(den, 1e-4, out=den)
        kept = cv2.bitwise_and(reduced, reduced, mask=b)  # the person's cells zeroed
        num = cv2.GaussianBlur(kept.astype(np.float32), (0, 0), s)
        return cv2.divide(num, cv2.merge((den, den, den)), dtype=cv2.CV_8U), levels > 0

    def _solid_color(self, size: tuple[int, int], order: Order) -> np.ndarray:
        r, g, b = self.options.key or _COLORS["green"]
        key = (size[0], size[1], order)
        if key not in self._solid:
            color = (r, g, b) if order.startswith("RGB") else (b, g, r)
            self._solid[key] = np.full((size[0], size[1], 3), color, np.uint8)
        return self._solid[key]

    def __call__(
        self,
        frame: np.ndarray,
        mask: np.ndarray,
        order: Order = "BGR",
        out: np.ndarray | None = None,
        small: np.ndarray | None = None,
    ) -> np.ndarray:
        """The composited frame: same size, same channel order and count as ``frame``.

        A 4-channel frame keeps 4 channels; with ``remove`` and no key colour its alpha becomes
        the mask. A 3-channel frame with ``remove`` and no key colour gets a green background.

        Args:
            frame: HxWx3 or HxWx4 uint8 image.
            mask: HxW uint8 person mask (255 = person).
            order: The frame's channel order.
            out: Where to write the result, shaped like ``frame`` (``frame`` itself composites
                in place); None: a new array.
            small: The model-resolution mask that ``mask`` is the bilinear upscale of
                (`Segmenter.small_mask`): the blur tells the cells without a person from it
                almost free. None: from ``mask`` (0.25 ms more at 720p).
        """
        effect = self.options.effect
        size = (frame.shape[0], frame.shape[1])
        four = frame.ndim == 3 and frame.shape[2] == 4
        if out is None:
            out = np.empty_like(frame)
        if effect == "none":
            if out is not frame:
                np.copyto(out, frame)
            return out
        if effect == "remove" and four and self.options.key is None:
            if out is not frame:
                np.copyto(out, frame)
            out[:, :, 3] = mask
            return out
        shape3 = (size[0], size[1], 3)
        if four:
            code = cv2.COLOR_BGRA2BGR if order == "BGRA" else cv2.COLOR_RGBA2RGB
            fg = out3 = cv2.cvtColor(frame, code, self._scratch("fg", shape3))
        else:
            fg, out3 = frame, out
        if effect == "mask":
            cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR, out3)
        elif effect == "blur":
            grid, reduced = self._blurred(fg, mask, small)
            if reduced:  # upscaled on the way, never written at full size
                wide = self._scratch("wide", (grid.shape[0], size[1], 3))
                blend_over_grid(out3, fg, grid, mask, wide)
            else:
                blend_into(out3, fg, grid, mask)
        else:
            if effect == "replace":
                assert self._background is not None  # set in __init__ for replace
                bg = self._background.frame(size, order.startswith("RGB"))
            else:
                bg = self._solid_color(size, order)
            blend_into(out3, fg, bg, mask)
        if four:
            cv2.cvtColor(out3, cv2.COLOR_BGR2BGRA, out)
        return out


def effect_from_args(effect: str, background: str | os.PathLike[str] | None) -> EffectOptions:
    """Effect options from an effect name (or full spec) and a separate background argument.

    Args:
        effect: ``blur``, ``replace``, ``remove``, ``mask``, ``none`` or a full spec.
        background: The file for ``replace``, the key colour for ``remove``, the sigma for
            ``blur``; ignored when ``effect`` already carries its argument.
    """
    if background and ":" not in effect and effect in ("replace", "remove", "blur"):
        return parse_effect(f"{effect}:{os.fspath(background)}")
    return parse_effect(effect)
