"""Compositing: the blend against numpy, and each effect on a frame whose person is known."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeopt.apps.background import Compositor, EffectOptions, blend, parse_effect
from edgeopt.apps.background.composite import cover_resize, parse_color
from edgeopt.apps.background.kernels import blend_over_grid
from edgeopt.apps.background.portrait_clip import sample_frames
from edgeopt.errors import ConfigError


def _mask(size: tuple[int, int] = (120, 160)) -> np.ndarray:
    mask = np.zeros(size, np.uint8)
    mask[:, : size[1] // 2] = 255
    mask[:, size[1] // 2 - 4 : size[1] // 2 + 4] = 128  # a soft edge
    return mask


def test_blend_matches_the_float_formula() -> None:
    rng = np.random.default_rng(0)
    fg, bg = (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2))
    mask = rng.integers(0, 256, (48, 64), dtype=np.uint8)
    a = mask[..., None] / 255.0
    want = fg * a + bg * (1 - a)
    got = blend(fg, bg, mask)
    assert np.abs(got.astype(np.float64) - want).max() <= 0.5 + 1e-9  # rounded, exactly
    out = fg.copy()
    assert blend(out, bg, mask, out) is out  # in place, into the foreground itself
    np.testing.assert_array_equal(out, got)
    back = bg.copy()
    assert blend(fg, back, mask, back) is back  # into the background itself
    np.testing.assert_array_equal(back, got)
    # The output overlapping an input without being it: a row further down the same memory.
    tall = np.concatenate([fg, fg[-1:]])
    want_below = blend(tall[1:].copy(), bg, mask)
    np.testing.assert_array_equal(blend(tall[1:], bg, mask, tall[:-1]), want_below)


def test_blur_keeps_the_person_and_blurs_the_background(
    red_blue_frame: Callable[..., np.ndarray],
) -> None:
    frame, mask = red_blue_frame(), _mask()
    out = Compositor(EffectOptions(effect="blur", blur=8))(frame, mask)
    np.testing.assert_array_equal(out[:, :70], frame[:, :70])
    background = np.abs(out[:, 100:].astype(int) - frame[:, 100:]).mean()
    assert background > 5  # the stripes are gone
    # Blurring keeps the background's mean colour.
    assert np.abs(out[:, 100:].mean((0, 1)) - frame[:, 100:].mean((0, 1))).max() < 12


def test_replace_with_an_image_and_in_place_on_rgba(
    tmp_path: Path, red_blue_frame: Callable[..., np.ndarray]
) -> None:
    bg = np.zeros((300, 200, 3), np.uint8)
    bg[:] = (10, 200, 30)
    cv2.imwrite(str(tmp_path / "bg.png"), bg)
    frame, mask = red_blue_frame(), _mask()
    out = Compositor(parse_effect(f"replace:{tmp_path / 'bg.png'}"))(frame, mask)
    assert (out[:, 100:] == (10, 200, 30)).all()
    np.testing.assert_array_equal(out[:, :70], frame[:, :70])
    rgba = cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA)
    Compositor(parse_effect(f"replace:{tmp_path / 'bg.png'}"))(rgba, mask, "RGBA", rgba)
    assert (rgba[:, 100:] == (30, 200, 10, 255)).all()  # RGB order respected


def test_remove_gives_alpha_or_a_key_colour(red_blue_frame: Callable[..., np.ndarray]) -> None:
    frame, mask = red_blue_frame(), _mask()
    bgra = cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA)
    out = Compositor(parse_effect("remove"))(bgra, mask, "BGRA")
    np.testing.assert_array_equal(out[:, :, 3], mask)
    np.testing.assert_array_equal(out[:, :, :3], frame)
    keyed = Compositor(parse_effect("remove:#ff00ff"))(frame, mask, "BGR")
    assert (keyed[:, 100:] == (255, 0, 255)).all()
    green = Compositor(parse_effect("remove"))(frame, mask, "BGR")
    assert (green[:, 100:] == (0, 255, 0)).all()


def test_mask_and_none_effects(red_blue_frame: Callable[..., np.ndarray]) -> None:
    frame, mask = red_blue_frame(), _mask()
    shown = Compositor(parse_effect("mask"))(frame, mask)
    np.testing.assert_array_equal(shown[:, :, 1], mask)
    np.testing.assert_array_equal(Compositor(parse_effect("none"))(frame, mask), frame)


def test_cover_resize_fills_and_crops() -> None:
    image = np.arange(100 * 50 * 3, dtype=np.uint8).reshape(100, 50, 3)
    assert cover_resize(image, (90, 160)).shape == (90, 160, 3)
    assert cover_resize(image, (400, 20)).shape == (400, 20, 3)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sparkle", "unknown effect"),
        ("replace", "give the background file"),
        ("replace:/no/such.png", "no such file"),
        ("blur:-3", "blur takes a sigma"),
        ("remove:mauve", "colour"),
    ],
)
def test_bad_effects_are_config_errors(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Compositor(parse_effect(spec))


def test_colours() -> None:
    assert parse_color("green") == (0, 255, 0)
    assert parse_color("#0a0b0c") == (10, 11, 12)
    assert parse_color("1, 2, 3") == (1, 2, 3)


def test_blur_leaves_no_halo_of_the_person_colour() -> None:
    """A saturated red person on a neutral grey background: after the blur effect no background
    pixel farther than a few pixels from the mask edge takes the person's colour."""
    h, w = 240, 320
    frame = np.full((h, w, 3), 128, np.uint8)  # BGR grey background
    mask = np.zeros((h, w), np.uint8)
    cv2.circle(mask, (160, 120), 60, 255, -1)
    frame[mask > 0] = (0, 0, 255)  # the person: pure red
    out = Compositor(parse_effect("blur:12"))(frame, mask, "BGR")
    far = cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0  # more than 4 px from the edge
    redness = out[..., 2].astype(int) - out[..., 1].astype(int)
    assert redness[far].max() <= 3, redness[far].max()
    # Today's blur-everything-then-blend bleeds red ~3 sigma out: the test would catch it.
    plain = cv2.GaussianBlur(frame, (0, 0), 12)
    a = mask[..., None] / 255.0
    old = (frame * a + plain * (1 - a)).astype(np.uint8)
    assert (old[..., 2].astype(int) - old[..., 1].astype(int))[far].max() > 40
    assert np.array_equal(out[mask == 255], frame[mask == 255])  # the person is untouched


def _scene(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A frame of the sample clip (real texture), a soft person mask and the model-resolution
    mask it is upscaled from."""
    h, w = size
    frame = next(sample_frames(size, 1))
    small = np.zeros((64, 64), np.uint8)
    cv2.ellipse(small, (30, 40), (14, 30), 0, 0, 360, 255, -1)
    small = cv2.GaussianBlur(small, (0, 0), 1.2)
    mask = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return frame, mask, small


def _float_blend(fg: np.ndarray, bg: np.ndarray, mask: np.ndarray) -> np.ndarray:
    a = mask[..., None] / 255.0
    return np.asarray(fg * a + bg.astype(np.float64) * (1 - a))


@pytest.mark.parametrize("size", [(480, 640), (479, 641), (720, 1280)])
@pytest.mark.parametrize("in_place", [False, True])
def test_key_colour_blend_matches_the_float_formula(size: tuple[int, int], in_place: bool) -> None:
    frame, mask, small = _scene(size)
    key = (255, 0, 255)
    want = _float_blend(frame, np.full_like(frame, key[::-1]), mask)
    comp = Compositor(parse_effect("remove:#ff00ff"))
    out = frame.copy() if in_place else np.empty_like(frame)
    got = comp(out if in_place else frame, mask, "BGR", out, small).astype(np.float64)
    assert np.abs(got - want).max() <= 0.5 + 1e-9  # rounded, exactly


def test_blend_over_a_grid_matches_resize_then_blend() -> None:
    """The blur's fused upscale-and-blend against cv2.resize to full size, then the blend."""
    rng = np.random.default_rng(1)
    for size, cells in (((720, 1280), (90, 160)), ((479, 641), (60, 80)), ((33, 47), (33, 47))):
        frame = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        mask = rng.integers(0, 256, size, dtype=np.uint8)
        grid = cv2.GaussianBlur(rng.integers(0, 256, (*cells, 3), dtype=np.uint8), (0, 0), 2)
        bg = cv2.resize(grid, size[::-1], interpolation=cv2.INTER_LINEAR)
        want = blend(frame, bg, mask).astype(int)
        got = blend_over_grid(np.empty_like(frame), frame, grid, mask)
        assert np.abs(got.astype(int) - want).max() <= 1
        assert np.abs(got.astype(int) - want).mean() < 0.2
        in_place = frame.copy()
        assert blend_over_grid(in_place, in_place, grid, mask) is in_place
        np.testing.assert_array_equal(in_place, got)


def test_blend_refuses_what_does_not_fit() -> None:
    fg = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"blend: bg is uint8 \(8, 9, 3\), want uint8 \(8, 8, 3\)"):
        blend(fg, np.zeros((8, 9, 3), np.uint8), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="blend: mask is float32"):
        blend(fg, fg, np.zeros((8, 8), np.float32))
    with pytest.raises(ValueError, match="not within the frame"):
        blend_over_grid(fg, fg, np.zeros((9, 8, 3), np.uint8), np.zeros((8, 8), np.uint8))


@pytest.mark.parametrize("size", [(480, 640), (479, 641), (720, 1280)])
def test_fast_blur_matches_a_float_reference(size: tuple[int, int]) -> None:
    """The reduced, tiled blur against the same effect in float at full resolution."""
    frame, mask, small = _scene(size)
    sigma = 12.0
    b = cv2.erode((mask <= 5).astype(np.uint8), np.ones((17, 17), np.uint8)).astype(np.float64)
    den = cv2.GaussianBlur(b, (0, 0), sigma)
    num = cv2.GaussianBlur(frame.astype(np.float64) * b[..., None], (0, 0), sigma)
    bg = num / np.maximum(den, 1e-6)[..., None]
    want = _float_blend(frame, bg, mask)
    far = cv2.dilate((mask > 5).view(np.uint8), np.ones((97, 97), np.uint8)) == 0
    far[:24], far[-24:], far[:, :24], far[:, -24:] = False, False, False, False  # borders
    comp = Compositor(parse_effect(f"blur:{sigma}"))
    for hint in (small, None):
        got = comp(frame, mask, "BGR", None, hint).astype(np.float64)
        diff = np.abs(got - want)
        # Away from the person both average the same background pixels (nearer, which pixels
        # count as "near the person" differs by a cell or two, and so does the average).
        assert diff[far].mean() < 2.0, diff[far].mean()
        assert np.percentile(diff[far], 99) < 12, np.percentile(diff[far], 99)
        np.testing.assert_array_equal(got[mask == 255], frame[mask == 255])
