"""Fidelity through the model's interface: feeds from images, masks read the model's way."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt.artifact import load_onnx
from edgeopt.bench.fidelity import FidelityMetrics, evaluation_feeds, feed_set, measure_fidelity
from edgeopt.errors import ConfigError
from edgeopt.interface import ModelInterface
from edgeopt.shapes import with_shapes


def test_feeds_and_measure(conv_model: Path, dynamic_model: Path) -> None:
    feeds = evaluation_feeds(conv_model, "builtin", count=3)
    assert len(feeds) == 3 and feeds[0]["x"].shape == (1, 3, 8, 8)
    assert feeds[0]["x"].min() >= 0.0 and feeds[0]["x"].max() <= 1.0
    m = measure_fidelity(conv_model, conv_model, feeds)
    assert isinstance(m, FidelityMetrics) and m.max_abs == 0.0 and m.samples == 3
    with pytest.raises(ConfigError, match="not an RGB image"):
        feed_set(dynamic_model, "builtin")
    with pytest.raises(ConfigError, match=r"dynamic dimension .* --shape x=1x4x1"):
        feed_set(dynamic_model, "auto", count=2)  # never sized silently
    sized = with_shapes(load_onnx(dynamic_model), {"x": (2, 4, 5)})
    rnd = feed_set(sized, "auto", count=2)
    assert rnd.random and rnd.feeds[0]["x"].shape == (2, 4, 5) and "random" in rnd.source


def test_feeds_follow_the_interface(conv_model: Path) -> None:
    iface = ModelInterface(
        input_name="x", input_size=(8, 8), layout="nchw", mean=(128, 128, 128), std=(64, 64, 64)
    )
    fs = feed_set(conv_model, "builtin", count=2, interface=iface)
    x = fs.feeds[0]["x"]
    assert x.min() < -1.0 and x.max() > 0.5  # normalized, not pixels / 255 in [0, 1]
    assert "evaluation" in fs.source and not fs.random
