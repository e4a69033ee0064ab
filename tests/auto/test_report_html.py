"""``report.html`` of ``edgeopt auto`` on MediaPipe selfie, rendered by headless Chromium and
looked at: the plot with the winner's marker, the masks, the table."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from edgeopt.auto import AutoSettings, search
from edgeopt.auto.html import WINNER_COLOUR


def _screenshot(page: Path, png: Path) -> np.ndarray:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "headless Chromium is needed: apt-get install chromium (scripts/setup.sh)"
    subprocess.run(
        [
            *(browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"),
            *("--window-size=1200,2600", f"--screenshot={png}", page.as_uri()),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    return np.asarray(Image.open(png).convert("RGB")).astype(np.int16)


def test_the_report_page_shows_plot_masks_and_table(selfie_model: Path, tmp_path: Path) -> None:
    settings = AutoSettings(
        bound="iou>=0.98",
        budget_s=120,
        candidates=("fp32", "fp16-weights"),
        backends=("onnxruntime",),
        threads=(1, 2),
        measure_s=2.0,
        finalists=2,
        evaluation_count=4,
    )
    result = search(selfie_model, tmp_path / "out", settings)
    page = tmp_path / "out" / "report.html"
    text = page.read_text()
    assert "http" not in text.replace("http-equiv", "")  # self-contained: nothing fetched
    assert len(re.findall(r"src='data:image/png;base64,", text)) == 2  # the plot, the masks
    assert f"<tr class='w'><td>{result.winner.name}</td>" in text
    pixels = _screenshot(page, tmp_path / "shot.png")
    red = np.array([int(WINNER_COLOUR[i : i + 2], 16) for i in (1, 3, 5)])
    near = np.abs(pixels - red).sum(axis=-1) < 40
    assert near.sum() > 30, "the winner's marker is not on the rendered plot"
    top = pixels[: pixels.shape[0] // 3]
    assert top.std() > 20  # text, axes and points drawn, not a blank page
    # The mask panel: dark mask backgrounds and white person areas below the plot.
    middle = pixels[pixels.shape[0] // 3 : 2 * pixels.shape[0] // 3].mean(axis=-1)
    assert (middle < 30).mean() > 0.05 and (middle > 225).mean() > 0.05


def test_the_optimize_report_page_shows_sizes_fidelity_and_decisions(
    selfie_model: Path, tmp_path: Path
) -> None:
    import edgeopt

    recipe = {
        "passes": [{"name": "simplify"}, {"name": "fp16"}],
        "data": {"evaluation_count": 4, "calibration_count": 4},
    }
    report = edgeopt.optimize(selfie_model, recipe, tmp_path / "out")
    page = tmp_path / "out" / "report.html"
    text = page.read_text()
    assert len(re.findall(r"src='data:image/png;base64,", text)) == 1
    assert "<td>fp16</td><td>applied</td>" in text and report.metric == "iou"
    pixels = _screenshot(page, tmp_path / "shot.png")
    red = np.array([0xD6, 0x27, 0x28])  # the fidelity line over the size bars
    assert (np.abs(pixels - red).sum(axis=-1) < 40).sum() > 30
    blue = np.array([0x9E, 0xCA, 0xE1])
    assert (np.abs(pixels - blue).sum(axis=-1) < 30).sum() > 2000  # three size bars
