"""Built-in text images for OCR models: printed text drawn on real photographs, disjoint roles.

An OCR model (a text detector, a recognizer, a direction classifier) scored on portraits says
little about what it does on text, so this module draws text the way a camera sees a sign or
a document: lines of words drawn with ``cv2.putText`` on photographs, in a dark-on-light box, a
light-on-dark (sometimes coloured) box, or straight on the photo with a soft halo, some lines
turned by up to 5 degrees, then lighting, blur, sensor noise and JPEG compression at quality
40-90. Nothing is downloaded: the photographs ship with scikit-image and matplotlib.

Fonts: OpenCV 5 maps every Hershey constant to one built-in typeface (Rubik) and ignores
``FONT_ITALIC``, so Hershey fonts alone would give one face in a few weights. OpenCV 5's
``cv2.FontFace`` draws TrueType files instead, and matplotlib ships real faces (DejaVu Sans,
Serif and Mono with their oblique and bold cuts, STIX, Computer Modern): those are used, so a
recognizer meets serif, sans, monospace and italic text. On OpenCV 4 (no ``FontFace``) each
face is replaced by a Hershey font (italic ones included), the roles still kept apart.

Two kinds of image:

- ``"page"``: a 640x640 scene, a crop of a photograph with 3-8 text lines on it, what a text
  detector sees;
- ``"line"``: one text line cropped tightly, as a recognizer gets it after detection: 48 px
  high, the text ``48 * aspect`` px wide (at most 320; a longer line is squeezed to 320),
  padded on the right with mid-grey to 48x320, as RapidOCR pads a line (zeros after its
  ``(pixel - 127.5) / 127.5`` normalization). Every third line is turned by 180 degrees
  before padding: the direction classifier's job is to find those.

Calibration and evaluation never share anything a model could learn: the photographs are
``edgeopt.data``'s split (calibration: astronaut, coffee, rocket, stereo_motorcycle, brick;
evaluation: Grace Hopper, chelsea, hubble_deep_field, gravel), the text lines come from
`CALIBRATION_TEXTS` or `EVALUATION_TEXTS` (no word in common) and the fonts from
`CALIBRATION_FONTS` or `EVALUATION_FONTS` (no font in common). Image ``i`` of a set depends
only on ``(role, kind, seed, i)``, so a longer set starts with the shorter one.

`text_images` gives the images and a description for reports (the shape ``edgeopt.data``
gives, without importing it: modules of one layer do not import each other); `text_samples`
adds what was drawn (the strings, their boxes, whether the line is upside down), for tests and
for accuracy against ground truth. The photographs are decoded once per process.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from edgeopt.errors import ConfigError

__all__ = [
    "CALIBRATION_FONTS",
    "CALIBRATION_TEXTS",
    "EVALUATION_FONTS",
    "EVALUATION_TEXTS",
    "LINE_HEIGHT",
    "LINE_WIDTH",
    "PAGE_SIZE",
    "TextSample",
    "text_images",
    "text_samples",
]

Role = Literal["calibration", "evaluation"]
Kind = Literal["page", "line"]

PAGE_SIZE = 640
LINE_HEIGHT = 48
LINE_WIDTH = 320

# Signs, labels and document snippets: capitals, digits, punctuation. The two tuples share no
# word (case-insensitive), so a model is never scored on words it was calibrated on.
CALIBRATION_TEXTS: tuple[str, ...] = (
    "OPEN 24 HOURS",
    "Exit B",
    "No Parking",
    "Sale -30%",
    "Route 66",
    "Coffee & Tea",
    "Platform 4",
    "Ticket #2071",
    "Mon-Fri 8:00",
    "Keep Left!",
    "Fresh Bread",
    "Room 305",
    "Call 555-0142",
    "Gate C12",
    "Push to open",
    "Total: $18.40",
    "Invoice 7731",
    "Wi-Fi: guest",
    "Do not enter",
    "Bus Stop",
    "Pharmacy",
    "Floor 2/3",
    "Page 14 of 20",
    "Lunch (12-13h)",
    "Water, 0.5L",
    "ID: AX-9921",
    "Hello World.",
    "Thank you!",
    "Dept. Physics",
    "Parcel 3kg",
    "EMERGENCY",
    "Aisle 7",
    "Price 4.99",
    "Main Street",
    "Library",
    "Quiet, please.",
    "Since 1987",
    "Order #4410",
    "Batch 22/B",
    "Speed 50",
    "Welcome Home",
    "Checkout",
    "Fire Alarm",
    "Apple Pie 3.20",
    "Vote YES",
    "Box 17 - Fragile",
    "Print? Y/N",
    "North Wing",
)
EVALUATION_TEXTS: tuple[str, ...] = (
    "CLOSED SUNDAY",
    "Entrance A",
    "Taxi Rank",
    "Discount 15%",
    "Highway 101",
    "Juice Bar",
    "Track 9",
    "Receipt 3356",
    "Sat 10:00",
    "Turn Right?",
    "Daily News",
    "Suite 1204",
    "Dial 020-7946",
    "Terminal 2",
    "Reserved",
    "Staff Only",
    "Sum: EUR 27.15",
    "Form Q4",
    "Password: pine8",
    "Mind the step",
    "Metro Line 5",
    "Bakery",
    "Level -1",
    "Chapter 6",
    "Break (15 min)",
    "Milk 1.5%",
    "Ref. KZ-4087",
    "Good morning,",
    "See you soon!",
    "Law Faculty",
    "Weight 12kg",
    "DANGER",
    "Shelf 18",
    "Cost 7.25",
    "Harbour Road",
    "Museum",
    "Silence!",
    "Est. 1952",
    "Serial 88-X",
    "Lot 5/C",
    "Limit 30",
    "Bon voyage",
    "Pay here",
    "West Tower",
    "Lemon Cake 2.80",
    "Polling Station",
    "Copy: A4/A3",
    "Keys #63",
)

# Typefaces: TrueType files that ship with matplotlib, drawn by OpenCV 5's cv2.putText, and
# OpenCV 5's own Rubik (at weights 300-800). On OpenCV 4, which has no TrueType text, each
# stands in as the Hershey font beside it; the two roles share no face either way.
CALIBRATION_FONTS: tuple[str, ...] = (
    "Rubik",
    "DejaVu Sans",
    "DejaVu Sans Bold",
    "DejaVu Serif Italic",
    "STIX General",
    "Computer Modern Sans",
)
EVALUATION_FONTS: tuple[str, ...] = (
    "DejaVu Serif",
    "DejaVu Sans Mono",
    "DejaVu Sans Oblique",
    "STIX General Bold",
    "STIX General Italic",
    "Computer Modern Roman",
)
_FONT_FILES: dict[str, tuple[str, int]] = {  # name: (matplotlib TTF or "" for Rubik, Hershey)
    "Rubik": ("", cv2.FONT_HERSHEY_SIMPLEX),
    "DejaVu Sans": ("DejaVuSans.ttf", cv2.FONT_HERSHEY_TRIPLEX),
    "DejaVu Sans Bold": ("DejaVuSans-Bold.ttf", cv2.FONT_HERSHEY_COMPLEX_SMALL),
    "DejaVu Serif Italic": ("DejaVuSerif-Italic.ttf", cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC),
    "STIX General": ("STIXGeneral.ttf", cv2.FONT_HERSHEY_SCRIPT_SIMPLEX),
    "Computer Modern Sans": ("cmss10.ttf", cv2.FONT_HERSHEY_SCRIPT_COMPLEX),
    "DejaVu Serif": ("DejaVuSerif.ttf", cv2.FONT_HERSHEY_COMPLEX),
    "DejaVu Sans Mono": ("DejaVuSansMono.ttf", cv2.FONT_HERSHEY_PLAIN),
    "DejaVu Sans Oblique": ("DejaVuSans-Oblique.ttf", cv2.FONT_HERSHEY_DUPLEX | cv2.FONT_ITALIC),
    "STIX General Bold": ("STIXGeneralBol.ttf", cv2.FONT_HERSHEY_DUPLEX),
    "STIX General Italic": ("STIXGeneralItalic.ttf", cv2.FONT_HERSHEY_TRIPLEX | cv2.FONT_ITALIC),
    "Computer Modern Roman": ("cmr10.ttf", cv2.FONT_HERSHEY_COMPLEX | cv2.FONT_ITALIC),
}

_PHOTOS: dict[str, tuple[str, ...]] = {
    "calibration": ("astronaut", "coffee", "rocket", "stereo_motorcycle", "brick"),
    "evaluation": ("grace_hopper", "chelsea", "hubble_deep_field", "gravel"),
}
_ROLE_ID = {"calibration": 0, "evaluation": 1}
_KIND_ID = {"page": 0, "line": 1}
_MAX_ANGLE = 5.0  # degrees, page lines
_LINE_ANGLE = 2.0  # degrees, line crops (a detector's box follows the line)
_GREY = 128  # the padding right of a line: 0.0039 after (pixel - 127.5) / 127.5


@dataclass(frozen=True)
class TextSample:
    """One image and what was drawn on it.

    Attributes:
        image: RGB uint8, ``PAGE_SIZE`` square for a page, ``LINE_HEIGHT x LINE_WIDTH`` for a
            line.
        texts: The strings drawn, top to bottom (one for a line).
        boxes: One ``[4, 2]`` float32 polygon ``(x, y)`` per string, clockwise from the top
            left of the text as written: glyph extents (cap height to descender), in the
            image's pixels, after rotation (and the 180-degree turn of a line).
        rotated: A line turned by 180 degrees (always ``False`` for a page).
    """

    image: np.ndarray
    texts: tuple[str, ...]
    boxes: tuple[np.ndarray, ...]
    rotated: bool


def text_images(role: Role, count: int, kind: Kind, seed: int = 0) -> tuple[list[np.ndarray], str]:
    """Images of printed text on photographs for one role (see the module docstring).

    Args:
        role: ``"calibration"`` or ``"evaluation"``; they share no photograph, text or font.
        count: How many images.
        kind: ``"page"`` (640x640 scenes with 3-8 lines) or ``"line"`` (48x320 line crops,
            every third upside down).
        seed: Seed of the drawing; the same arguments give the same images.

    Returns:
        RGB uint8 images and a description for reports.

    Raises:
        ConfigError: A bad role, kind or count, or scikit-image / matplotlib missing.
    """
    samples, description = text_samples(role, count, kind, seed)
    return [s.image for s in samples], description


def text_samples(role: Role, count: int, kind: Kind, seed: int = 0) -> tuple[list[TextSample], str]:
    """Like `text_images`, with what each image shows: strings, boxes, upside down or not.

    Raises:
        ConfigError: A bad role, kind or count, or scikit-image / matplotlib missing.
    """
    if role not in _ROLE_ID:
        raise ConfigError(f"text image role must be 'calibration' or 'evaluation', not {role!r}")
    if kind not in _KIND_ID:
        raise ConfigError(f"text image kind must be 'page' or 'line', not {kind!r}")
    if count < 1:
        raise ConfigError(f"image count must be at least 1, got {count}")
    photos = _photos(role)
    texts = CALIBRATION_TEXTS if role == "calibration" else EVALUATION_TEXTS
    names = CALIBRATION_FONTS if role == "calibration" else EVALUATION_FONTS
    fonts = tuple(_font(name) for name in names)
    draw = _page if kind == "page" else _line
    samples = []
    for i in range(count):
        rng = np.random.default_rng((seed, _ROLE_ID[role], _KIND_ID[kind], i))
        samples.append(draw(rng, photos, texts, fonts, upside_down=i % 3 == 2))
    what = (
        f"{count} pages ({PAGE_SIZE}x{PAGE_SIZE}) of 3-8 printed text lines on photographs, "
        f"rotation ±{_MAX_ANGLE:g}°"
        if kind == "page"
        else f"{count} text-line crops ({LINE_HEIGHT}x{LINE_WIDTH}, right-padded), "
        f"{sum(s.rotated for s in samples)} turned 180°"
    )
    return samples, (
        f"built-in text ({role}): {what}; {len(texts)} strings; fonts: {_font_names(fonts)}; "
        f"blur, noise, JPEG q40-90; photographs: {', '.join(_PHOTOS[role])}"
    )


@functools.lru_cache(maxsize=2)
def _photos(role: Role) -> tuple[np.ndarray, ...]:
    """The role's photographs, RGB uint8, decoded once (read-only)."""
    try:
        import matplotlib.cbook
        import skimage.data
    except ImportError as e:
        raise ConfigError(
            "the built-in text images need scikit-image and matplotlib (pip install "
            "scikit-image matplotlib)"
        ) from e
    out = []
    for name in _PHOTOS[role]:
        if name == "grace_hopper":
            path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None:
                raise ConfigError(
                    f"{path}: matplotlib's sample image grace_hopper.jpg is unreadable"
                )
            image = bgr[..., ::-1]
        else:
            loaded = getattr(skimage.data, name)()
            image = np.asarray(loaded[0] if isinstance(loaded, tuple) else loaded)
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        image = np.ascontiguousarray(image[..., :3].astype(np.uint8))
        image.flags.writeable = False
        out.append(image)
    return tuple(out)


def _background(
    rng: np.random.Generator, photos: tuple[np.ndarray, ...], size: tuple[int, int]
) -> np.ndarray:
    """A random crop of a random photograph, resized to ``size`` (h, w), maybe mirrored."""
    photo = photos[int(rng.integers(len(photos)))]
    h, w = size
    ph, pw = photo.shape[:2]
    aspect = w / h
    ch = min(ph, pw / aspect) * rng.uniform(0.35, 1.0)
    cw = ch * aspect
    y = rng.uniform(0, ph - ch)
    x = rng.uniform(0, pw - cw)
    crop = photo[int(y) : int(y + ch) + 1, int(x) : int(x + cw) + 1]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    interp = cv2.INTER_AREA if crop.shape[0] > h else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(np.ascontiguousarray(crop), (w, h), interpolation=interp))


@dataclass(frozen=True)
class _Font:
    """A typeface: an OpenCV 5 TrueType face, else (OpenCV 4) a Hershey font."""

    name: str
    face: Any  # cv2.FontFace, or None for the Hershey font
    hershey: int
    rubik: bool  # OpenCV 5's built-in variable face: weights 300-800


@functools.lru_cache(maxsize=32)
def _font(name: str) -> _Font:
    """The font called ``name`` (see `CALIBRATION_FONTS`), loaded once."""
    file, hershey = _FONT_FILES[name]
    face_type = getattr(cv2, "FontFace", None)
    if face_type is None:
        return _Font(name, None, hershey, rubik=False)
    if not file:
        return _Font(name, face_type("sans"), hershey, rubik=True)
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / file
    if not path.is_file():
        return _Font(name, None, hershey, rubik=False)
    return _Font(name, face_type(str(path)), hershey, rubik=False)


def _font_names(fonts: tuple[_Font, ...]) -> str:
    if all(f.face is not None for f in fonts):
        return ", ".join(f.name for f in fonts)
    return f"{len(fonts)} Hershey fonts (OpenCV 4 has no TrueType text)"


def _extent(font: _Font, text: str, size: float, weight: int) -> tuple[int, int, int]:
    """Width, ascent and descent (px, from the baseline) of ``text`` drawn at ``size``."""
    if font.face is not None:
        x, y, w, h = cv2.getTextSize((0, 0), text, (0, 0), font.face, round(size), weight)
        return x + w, -y, h + y
    scale, thickness = _hershey(font, size, weight)
    (w, h), base = cv2.getTextSize(text, font.hershey, scale, thickness)
    slant = int(0.3 * h) if font.hershey & cv2.FONT_ITALIC else 0
    return w + slant, h, base + thickness


def _hershey(font: _Font, size: float, weight: int) -> tuple[float, int]:
    (_, unit), _ = cv2.getTextSize("H", font.hershey, 1.0, 1)
    scale = 0.7 * size / unit  # a TrueType size is about 1.4 cap heights
    return scale, max(1, round(scale * weight / 300))


def _put(
    mask: np.ndarray, font: _Font, text: str, org: tuple[int, int], size: float, weight: int
) -> None:
    if font.face is not None:
        cv2.putText(mask, text, org, 255, font.face, round(size), weight)
    else:
        scale, thickness = _hershey(font, size, weight)
        cv2.putText(mask, text, org, font.hershey, scale, 255, thickness, cv2.LINE_AA)


@dataclass(frozen=True)
class _Line:
    """A text line laid out in its own patch: size, baseline origin, glyph box, colours."""

    text: str
    font: _Font
    size: float  # font size, px
    weight: int
    patch: tuple[int, int]  # (w, h)
    origin: tuple[int, int]  # baseline start inside the patch
    glyphs: np.ndarray  # [4, 2] glyph box inside the patch
    style: str  # "light box", "dark box" or "bare"
    box_color: tuple[float, float, float]
    text_color: tuple[float, float, float]
    halo: float  # strength of a bare line's halo, 0-1


def _layout(rng: np.random.Generator, text: str, font: _Font, height: float) -> _Line:
    """Lay ``text`` out with glyphs about ``height`` px tall (ascender to descender)."""
    if font.face is None:  # Hershey: the weight sets the stroke thickness
        weight = int(rng.integers(250, 700))
    else:  # only the variable Rubik has weights; 0 is a TrueType file's own
        weight = int(rng.integers(300, 801)) if font.rubik else 0
    _, ascent, descent = _extent(font, "Hg", 100.0, weight)
    size = 100.0 * height / (ascent + descent)
    width, ascent, descent = _extent(font, text, size, weight)
    pad_x = int(height * rng.uniform(0.2, 0.6)) + 2
    pad_y = int(height * rng.uniform(0.12, 0.35)) + 2
    w, h = width + 2 * pad_x, ascent + descent + 2 * pad_y
    ox, oy = pad_x, pad_y + ascent
    glyphs = np.array(
        [
            [ox, oy - ascent],
            [ox + width, oy - ascent],
            [ox + width, oy + descent],
            [ox, oy + descent],
        ],
        np.float32,
    )
    style = ("light box", "dark box", "bare")[int(rng.integers(3))]
    light = _rgb(rng.uniform(190, 255, 3))
    dark = _rgb(rng.uniform(0, 70, 3))
    if style == "dark box" and rng.random() < 0.5:  # a coloured sign: blue, green or red
        dark = _rgb(np.roll([rng.uniform(90, 170), 20.0, 20.0], int(rng.integers(3))))
    box, ink = (light, dark) if style == "light box" else (dark, light)
    halo = rng.uniform(0.4, 0.8)
    return _Line(text, font, size, weight, (w, h), (ox, oy), glyphs, style, box, ink, halo)


def _rgb(values: np.ndarray) -> tuple[float, float, float]:
    return float(values[0]), float(values[1]), float(values[2])


def _stamp(canvas: np.ndarray, line: _Line, m: np.ndarray) -> np.ndarray:
    """Draw ``line`` on ``canvas`` (float32 RGB, in place) through the 2x3 affine ``m``.

    Only the patch's footprint is warped and blended. A bare line's ink contrasts with the
    photograph under it. Returns the glyph polygon in canvas pixels.
    """
    w, h = line.patch
    ch, cw = canvas.shape[:2]
    corners = cv2.transform(np.array([[[0, 0], [w, 0], [w, h], [0, h]]], np.float32), m)[0]
    x0, y0 = (max(0, math.floor(v)) for v in corners.min(axis=0))
    x1, y1 = (
        min(cw, math.ceil(corners[:, 0].max())),
        min(ch, math.ceil(corners[:, 1].max())),
    )
    glyphs = np.asarray(cv2.transform(line.glyphs[None], m)[0], np.float32)
    if x1 <= x0 or y1 <= y0:
        return glyphs
    local = m.copy()
    local[:, 2] -= (x0, y0)
    roi = canvas[y0:y1, x0:x1]
    mask = np.zeros((h, w), np.uint8)
    _put(mask, line.font, line.text, line.origin, line.size, line.weight)
    ink_alpha = cv2.warpAffine(mask, local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
    box = cv2.warpAffine(np.full((h, w), 255, np.uint8), local, (x1 - x0, y1 - y0))
    ink = np.asarray(line.text_color, np.float32)
    if line.style == "bare":  # painted or printed straight on the scene
        lum = float(roi[box > 127].mean()) if (box > 127).any() else 128.0
        ink = np.full(3, 20.0 if lum > 110 else 240.0, np.float32)
        # A soft halo of the other tone, as on a label or a caption, keeps busy scenes legible.
        grown = cv2.dilate(ink_alpha, np.ones((3, 3), np.uint8), iterations=max(1, h // 16))
        halo = cv2.GaussianBlur(grown, (0, 0), max(1.0, h / 16)).astype(np.float32)
        halo = halo[..., None] * np.float32(line.halo / 255.0)
        roi *= 1.0 - halo
        roi += halo * (255.0 - ink)
    else:
        box_alpha = box.astype(np.float32)[..., None] / 255.0
        roi *= 1.0 - box_alpha
        roi += box_alpha * np.asarray(line.box_color, np.float32)
    alpha = ink_alpha.astype(np.float32)[..., None] / 255.0
    roi *= 1.0 - alpha
    roi += alpha * ink
    return glyphs


def _rotation(line: _Line, angle: float) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Rotation of the patch about its centre, and the rotated patch's bounds (x0, y0, x1, y1)."""
    w, h = line.patch
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    corners = cv2.transform(np.array([[[0, 0], [w, 0], [w, h], [0, h]]], np.float32), m)[0]
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    return m, (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


def _degrade(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Lighting, defocus blur, sensor noise and JPEG compression (quality 40-90), as uint8."""
    out: np.ndarray = image * np.float32(rng.uniform(0.75, 1.15))
    if rng.random() < 0.5:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, 1.2)))
    if rng.random() < 0.5:
        noise = rng.standard_normal(out.shape, dtype=np.float32)
        out += noise * np.float32(rng.uniform(2.0, 7.0))
    quality = int(rng.integers(40, 91))
    pixels = np.clip(out, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
        raise ConfigError("OpenCV could not JPEG-encode a text image")
    return np.asarray(cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED))


def _page(
    rng: np.random.Generator,
    photos: tuple[np.ndarray, ...],
    texts: tuple[str, ...],
    fonts: tuple[_Font, ...],
    upside_down: bool,
) -> TextSample:
    """A 640x640 scene with 3-8 text lines stacked top to bottom, some turned by up to 5°."""
    del upside_down  # a page is always upright
    size = PAGE_SIZE
    canvas = _background(rng, photos, (size, size)).astype(np.float32)
    n = int(rng.integers(3, 9))
    chosen = rng.choice(len(texts), size=n, replace=False)
    slot = (size - 20) / n  # vertical room per line
    y = 10.0 + rng.uniform(0, 0.15 * slot)
    drawn, boxes = [], []
    for index in chosen:
        font = fonts[int(rng.integers(len(fonts)))]
        height = min(rng.uniform(20, 48), slot * 0.5)
        line = _layout(rng, texts[int(index)], font, height)
        angle = rng.uniform(-_MAX_ANGLE, _MAX_ANGLE) if rng.random() < 0.5 else 0.0
        m, (x0, y0, x1, y1) = _rotation(line, angle)
        if x1 - x0 > size - 20:  # too wide for the page: lay it out smaller
            line = _layout(rng, line.text, font, height * (size - 20) / (x1 - x0) * 0.95)
            m, (x0, y0, x1, y1) = _rotation(line, angle)
        if y + (y1 - y0) > size - 5:
            break
        left = rng.uniform(10, max(10.0, size - 10 - (x1 - x0)))
        m[0, 2] += left - x0
        m[1, 2] += y - y0
        boxes.append(_stamp(canvas, line, m))
        drawn.append(line.text)
        y += (y1 - y0) + rng.uniform(0.05, 0.5) * slot
    image = _degrade(rng, canvas)
    return TextSample(image, tuple(drawn), tuple(boxes), rotated=False)


def _line(
    rng: np.random.Generator,
    photos: tuple[np.ndarray, ...],
    texts: tuple[str, ...],
    fonts: tuple[_Font, ...],
    upside_down: bool,
) -> TextSample:
    """One text line as a detector crops it, resized to 48 px high and right-padded to 320."""
    text = texts[int(rng.integers(len(texts)))]
    font = fonts[int(rng.integers(len(fonts)))]
    line = _layout(rng, text, font, rng.uniform(26, 44))
    angle = rng.uniform(-_LINE_ANGLE, _LINE_ANGLE) if rng.random() < 0.5 else 0.0
    w, h = line.patch
    canvas = _background(rng, photos, (h, w)).astype(np.float32)
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    glyphs = _stamp(canvas, line, m)
    crop = _degrade(rng, canvas)
    width = min(LINE_WIDTH, max(1, math.ceil(LINE_HEIGHT * w / h)))
    small = cv2.resize(crop, (width, LINE_HEIGHT), interpolation=cv2.INTER_AREA)
    box = np.asarray(glyphs * np.array([width / w, LINE_HEIGHT / h], np.float32), np.float32)
    if upside_down:
        small = small[::-1, ::-1]
        box = np.array([width, LINE_HEIGHT], np.float32) - box
    image = np.full((LINE_HEIGHT, LINE_WIDTH, 3), _GREY, np.uint8)
    image[:, :width] = small
    return TextSample(image, (text,), (box,), rotated=upside_down)
