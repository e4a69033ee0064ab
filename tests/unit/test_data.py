"""Calibration and evaluation images: built-in sets, folders, videos; never the same image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeopt.data import load_images
from edgeopt.errors import ConfigError


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


def test_builtin_sets_are_real_varied_and_disjoint() -> None:
    cal = load_images("builtin", count=12, role="calibration")
    ev = load_images(None, count=12, role="evaluation")
    assert len(cal.images) == len(ev.images) == 12
    assert all(im.dtype == np.uint8 and im.ndim == 3 for im in cal.images + ev.images)
    assert "astronaut" in cal.source and "Hopper" in ev.source and "black frame" in ev.source
    assert not any(_same(a, b) for a in cal.images for b in ev.images)
    means = [im.mean() for im in ev.images]
    assert min(means) < 5 and max(means) > 80  # a black frame and bright ones
    again = load_images("builtin", count=12, role="evaluation")
    assert all(_same(a, b) for a, b in zip(ev.images, again.images, strict=True))


def test_folder_and_video_are_split_by_role(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((20, 30, 3), 40 * i, np.uint8))
    (folder / "notes.txt").write_text("ignored")
    cal = load_images(folder, count=8, role="calibration")
    ev = load_images(folder, count=8, role="evaluation")
    assert [im[0, 0, 0] for im in cal.images] == [0, 80]
    assert [im[0, 0, 0] for im in ev.images] == [40, 120]

    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"MJPG"), 10, (32, 24))
    for i in range(10):
        writer.write(np.full((24, 32, 3), 20 * i, np.uint8))
    writer.release()
    first = load_images(video, count=3, role="calibration")
    second = load_images(video, count=3, role="evaluation")
    assert max(im.mean() for im in first.images) < min(im.mean() for im in second.images)
    assert "frames from 5 to 9" in second.source

    with pytest.raises(ConfigError, match="neither 'builtin'"):
        load_images(tmp_path / "missing")
    one = tmp_path / "one"
    one.mkdir()
    cv2.imwrite(str(one / "a.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ConfigError, match="cannot give disjoint"):
        load_images(one)
