"""Fidelity metrics on known arrays, and evaluation inputs from images, folders and videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeopt.artifact import load_onnx
from edgeopt.bench.fidelity import (
    FidelityMetrics,
    Preprocessing,
    boundary_f_score,
    compare_outputs,
    evaluation_feeds,
    load_images,
    mask_iou,
    measure,
    preprocess,
    preprocessing_for,
)
from edgeopt.errors import ConfigError


def _square(top: int, left: int, side: int = 10, size: int = 32) -> np.ndarray:
    m = np.zeros((size, size), np.float32)
    m[top : top + side, left : left + side] = 0.9
    return m


def test_identical_outputs_are_perfect() -> None:
    ref = [np.random.default_rng(0).random((1, 32, 32, 1)).astype(np.float32) for _ in range(3)]
    m = compare_outputs(ref, ref)
    assert (m.max_abs, m.mean_abs, m.iou, m.iou_min, m.boundary_f, m.samples) == (0, 0, 1, 1, 1, 3)
    assert m.cosine == pytest.approx(1.0)


def test_mask_iou_of_two_squares() -> None:
    # 10x10 squares offset by 5 columns: intersection 50, union 150.
    assert mask_iou(_square(0, 0), _square(0, 5)) == pytest.approx(50 / 150)
    assert mask_iou(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0


def test_mask_layouts_give_the_same_iou() -> None:
    # One map as [H,W,1] (a batch split per frame), [1,H,W,1], [1,1,H,W] or [H,W]: one mask,
    # never H one-column masks (whose worst IoU would be 0 wherever a column is empty).
    ref, cand = _square(0, 0), _square(0, 5)
    for shape in [(32, 32, 1), (1, 32, 32, 1), (1, 1, 32, 32), (32, 32)]:
        m = compare_outputs([ref.reshape(shape)], [cand.reshape(shape)])
        assert (m.iou, m.iou_min) == (pytest.approx(50 / 150), pytest.approx(50 / 150)), shape


def test_boundary_f_score_tolerance() -> None:
    a = _square(8, 8)
    assert boundary_f_score(a, _square(9, 9), tolerance=2) == 1.0
    shifted = boundary_f_score(a, _square(8, 14), tolerance=2)
    assert 0.0 < shifted < 1.0
    assert boundary_f_score(a, np.zeros_like(a)) == 0.0


def test_errors_and_cosine_on_known_values() -> None:
    ref = [np.array([[1.0, 0.0]])]
    cand = [np.array([[0.0, 1.0]])]
    m = compare_outputs(ref, cand)
    assert m.max_abs == 1.0 and m.mean_abs == 1.0 and m.cosine == pytest.approx(0.0)
    assert m.meets("max_abs", 1.0) and not m.meets("cosine", 0.5)
    with pytest.raises(ConfigError, match="unknown fidelity metric 'psnr'"):
        m.value("psnr")
    with pytest.raises(ConfigError, match="shapes differ"):
        compare_outputs(ref, [np.zeros((1, 3))])


def test_preprocess_layouts() -> None:
    image = np.full((40, 60, 3), 255, np.uint8)
    image[..., 0] = 0
    x = preprocess(image, Preprocessing("in", (16, 24), "nhwc"))
    assert x.shape == (1, 16, 24, 3) and x.dtype == np.float32
    assert x[..., 0].max() == 0.0 and x[..., 1].min() == 1.0
    y = preprocess(image, Preprocessing("in", (16, 24), "nchw"))
    assert y.shape == (1, 3, 16, 24)
    np.testing.assert_array_equal(y[0].transpose(1, 2, 0), x[0])


def test_builtin_set_is_augmented_real_photos() -> None:
    a = load_images("builtin", count=4, seed=0)
    b = load_images(None, count=4, seed=1)
    assert len(a) == 4 and all(im.ndim == 3 and im.shape[2] == 3 for im in a)
    assert a[0].dtype == np.uint8 and a[0].std() > 20  # a photograph, not a flat image
    assert any(x.shape != y.shape or not np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_folder_and_video_sources(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("ignored")
    images = load_images(folder, count=2)
    assert len(images) == 2 and images[1][0, 0, 0] == 40

    cv2 = pytest.importorskip("cv2")
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    for i in range(10):
        writer.write(np.full((24, 32, 3), 20 * i, np.uint8))
    writer.release()
    frames = load_images(video, count=4)
    assert len(frames) == 4 and frames[0].shape == (24, 32, 3)
    assert frames[-1].mean() > frames[0].mean()

    with pytest.raises(ConfigError, match="neither 'builtin'"):
        load_images(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no images"):
        load_images(empty)


def test_evaluation_feeds_and_measure(conv_model: Path, dynamic_model: Path) -> None:
    feeds = evaluation_feeds(conv_model, "builtin", count=3)
    assert len(feeds) == 3 and feeds[0]["x"].shape == (1, 3, 8, 8)
    assert feeds[0]["x"].min() >= 0.0 and feeds[0]["x"].max() <= 1.0
    m = measure(conv_model, conv_model, feeds)
    assert isinstance(m, FidelityMetrics) and m.max_abs == 0.0 and m.samples == 3
    with pytest.raises(ConfigError, match="not an RGB image"):
        preprocessing_for(load_onnx(dynamic_model))
    rnd = evaluation_feeds(dynamic_model, "random", count=2)
    assert rnd[0]["x"].shape == (1, 4, 1)
