"""The segmenter: pre-processing against numpy, masks against known and fp32 references."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

import edgeopt
from _helpers import IMAGENET_MEAN, IMAGENET_STD, make_red_logits_nhwc_bgr, make_red_softmax_nchw
from edgeopt.apps.background import Segmenter, SegmenterOptions, load_segmenter
from edgeopt.apps.background.portrait_clip import sample_frames
from edgeopt.apps.background.segmenter import resolve_model
from edgeopt.bench.fidelity import mask_iou
from edgeopt.errors import ConfigError, InputMismatchError


def test_preprocess_matches_numpy_reference(
    red_model: Path, red_blue_frame: Callable[..., np.ndarray]
) -> None:
    seg = Segmenter(edgeopt.compile(red_model))
    frame = red_blue_frame()
    # Bilinear in float (OpenCV's sampling, without its rounding to uint8).
    want = cv2.resize(frame.astype(np.float32), (32, 32), interpolation=cv2.INTER_LINEAR)
    want = want[..., ::-1] / 255.0
    np.testing.assert_allclose(seg.preprocess(frame, "BGR")[0], want, atol=1e-6)
    rgba = cv2.cvtColor(frame, cv2.COLOR_BGR2RGBA)
    np.testing.assert_allclose(seg.preprocess(rgba, "RGBA")[0], want, atol=1e-6)
    with pytest.raises(InputMismatchError, match="channel order RGBA"):
        seg.preprocess(frame, "RGBA")


def test_mask_marks_the_person_and_is_frame_sized(
    red_model: Path, red_blue_frame: Callable[..., np.ndarray]
) -> None:
    seg = Segmenter(edgeopt.compile(red_model), options=SegmenterOptions(feather=0))
    mask = seg.segment(red_blue_frame((120, 160)))
    assert mask.shape == (120, 160) and mask.dtype == np.uint8
    assert mask[:, :70].min() > 240  # red half: the person
    assert mask[:, 90:].max() < 15  # blue half: background


def test_threshold_smoothing_and_frame_skipping(
    red_model: Path, red_blue_frame: Callable[..., np.ndarray]
) -> None:
    frame = red_blue_frame()
    opts = SegmenterOptions(threshold=0.5, feather=0)
    # At the model's own size the upscale is the identity: a thresholded mask is binary.
    mask = Segmenter(edgeopt.compile(red_model), options=opts).segment(red_blue_frame((32, 32)))
    assert set(np.unique(mask).tolist()) == {0, 255}

    smooth = Segmenter(edgeopt.compile(red_model), options=SegmenterOptions(smoothing=0.5))
    smooth.segment(frame)
    black = np.zeros_like(frame)
    second = smooth.segment(black)  # half the previous mask survives one frame
    assert 100 < second[:, :60].mean() < 160

    skip = Segmenter(edgeopt.compile(red_model), options=SegmenterOptions(every=3))
    for _ in range(9):
        skip.segment(frame)
    assert skip.model_runs == 3


def test_bad_models_and_names_are_config_errors(dynamic_model: Path, conv_model: Path) -> None:
    with pytest.raises(ConfigError, match="needs an image input"):
        Segmenter(edgeopt.compile(dynamic_model))
    with pytest.raises(ConfigError, match="not a person mask"):
        Segmenter(edgeopt.compile(conv_model))  # [1,4,8,8]: four channels, not a mask
    with pytest.raises(ConfigError, match="neither a zoo model"):
        resolve_model("no-such-model")


def test_masks_on_the_sample_clip_match_the_fp32_reference(selfie_model: Path) -> None:
    """The pipeline's masks (edgeopt.compile, 2 threads) vs plain ORT fp32 on the same input."""
    seg = load_segmenter("mediapipe-selfie", backend_options={"threads": 2})
    options = seg.model.options  # type: ignore[attr-defined]
    assert options.spinning and options.spin_stop  # spin during a run only
    ref = ort.InferenceSession(str(selfie_model), providers=["CPUExecutionProvider"])
    ious, person = [], []
    for size in ((480, 640), (720, 1280)):
        for frame in list(sample_frames(size, 12))[::3]:
            small = cv2.resize(frame.astype(np.float32), (256, 256), interpolation=cv2.INTER_LINEAR)
            x = (cv2.cvtColor(small, cv2.COLOR_BGR2RGB) / 255.0).astype(np.float32)[None]
            want = ref.run(None, {"input_1": x})[0][0, :, :, 0]
            got = seg.infer(seg.preprocess(frame))
            ious.append(mask_iou(want, got))
            person.append(float((got > 0.5).mean()))
            mask = seg.segment(frame)
            assert mask.shape == size
    assert min(ious) > 0.999
    # A portrait: the person fills a good part of every frame, and not all of it.
    assert all(0.1 < p < 0.95 for p in person), person


def test_optimized_segmenter_is_cached_and_gives_the_same_masks(selfie_model: Path) -> None:
    """``optimize=True`` runs the exact ort_layout rewrite once, cached beside the zoo model."""
    from edgeopt.apps.background.segmenter import ort_layout_file

    fast_path = ort_layout_file(selfie_model)
    assert fast_path != selfie_model and fast_path.parent == selfie_model.parent
    mtime = fast_path.stat().st_mtime_ns
    assert ort_layout_file(selfie_model) == fast_path and fast_path.stat().st_mtime_ns == mtime
    ops = [n.op_type for n in edgeopt.load(fast_path).proto().graph.node]
    plain_ops = [n.op_type for n in edgeopt.load(selfie_model).proto().graph.node]
    assert ops.count("Transpose") < plain_ops.count("Transpose")  # the NHWC stem is folded
    plain = load_segmenter("mediapipe-selfie", backend_options={"threads": 1})
    fast = load_segmenter("mediapipe-selfie", backend_options={"threads": 1}, optimize=True)
    for frame in list(sample_frames((480, 640), 8))[::2]:
        x = plain.preprocess(frame)
        want, got = plain.infer(x), fast.infer(x)
        assert float(np.abs(want - got).max()) < 1e-4
        assert mask_iou(want, got) > 0.999


def test_stage_times_stay_bounded_over_a_long_run() -> None:
    from edgeopt.apps.background.segmenter import StageTimes

    times = StageTimes(window=1000)
    for i in range(50_000):
        times.add("infer", float(i))
    assert len(times.samples("infer")) == 1000  # the record per stage does not grow
    assert times.counts["infer"] == 50_000
    p50, _ = times.percentiles("infer")
    assert p50 == pytest.approx(49_499.5)  # over the recent window only


@pytest.mark.parametrize("kind", ["softmax-nchw-imagenet", "logits-nhwc-bgr"])
def test_models_shaped_otherwise_give_the_right_masks(
    tmp_path: Path, red_blue_frame: Callable[..., np.ndarray], kind: str
) -> None:
    """Any person-segmentation model runs once its interface is given (or read off the graph)."""
    if kind == "softmax-nchw-imagenet":
        path = make_red_softmax_nchw(tmp_path / "m.onnx")
        fields = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}  # softmax, channel 1: inferred
    else:
        path = make_red_logits_nhwc_bgr(tmp_path / "m.onnx")
        fields = {"channel_order": "bgr"}  # 2-channel logits, channel 1: inferred
    seg = load_segmenter(str(path), options=SegmenterOptions(feather=0), interface=fields)
    mask = seg.segment(red_blue_frame((120, 160)))
    assert mask[:, :70].min() > 240 and mask[:, 90:].max() < 15
    # Fed the way every model used to be fed (RGB / 255), the masks are wrong.
    wrong = load_segmenter(str(path), options=SegmenterOptions(feather=0))
    bad = wrong.segment(red_blue_frame((120, 160)))
    assert not (bad[:, :70].min() > 240 and bad[:, 90:].max() < 15)


def test_similar_frames_reuse_the_mask(
    red_model: Path, red_blue_frame: Callable[..., np.ndarray]
) -> None:
    seg = Segmenter(edgeopt.compile(red_model), options=SegmenterOptions(similar=2.0))
    frame = red_blue_frame()
    noisy = np.clip(frame.astype(int) + 1, 0, 255).astype(np.uint8)  # a 1-level flicker
    for f in (frame, noisy, frame, noisy):
        seg.segment(f)
    assert (seg.model_runs, seg.reused) == (1, 3)
    moved = np.roll(frame, 40, axis=1)  # the person moved: the model must run
    mask = seg.segment(moved)
    assert seg.model_runs == 2
    assert mask[:, 50:100].min() > 240  # the mask follows the moved red half
