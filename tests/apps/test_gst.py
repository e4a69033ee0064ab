"""The GStreamer element: headless in-process pipelines and a gst-launch file-to-file run.

Skipped, with the reason, only where GStreamer or its Python bindings are absent (scripts/
setup.sh installs them). The environment the element needs is set here, per test.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

gi = pytest.importorskip("gi", reason="PyGObject is not installed (pip install pygobject)")
try:
    for _name in ("Gst", "GstBase", "GstVideo", "GstApp"):
        gi.require_version(_name, "1.0")
    from gi.repository import Gst, GstBase, GstVideo  # noqa: F401
except (ValueError, ImportError) as e:  # pragma: no cover - depends on the machine
    pytest.skip(f"GStreamer's introspection data is missing: {e}", allow_module_level=True)

from edgeopt.apps.background import gst  # noqa: E402
from edgeopt.apps.background.portrait_clip import sample_frames, write_sample  # noqa: E402
from edgeopt.apps.background.segmenter import load_segmenter  # noqa: E402


def _pull_all(sink: Gst.Element) -> list[np.ndarray]:
    frames = []
    while True:
        sample = sink.emit("try-pull-sample", 10 * Gst.SECOND)
        if sample is None:
            return frames
        caps = sample.get_caps().get_structure(0)
        w, h = caps.get_value("width"), caps.get_value("height")
        buf = sample.get_buffer()
        ok, info = buf.map(Gst.MapFlags.READ)
        assert ok
        data = np.frombuffer(info.data, np.uint8).copy()
        buf.unmap(info)
        channels = len(caps.get_value("format"))  # RGB, BGR: 3; RGBA, BGRA: 4
        rows = data[: (data.size // h) * h].reshape(h, -1)  # rows may be padded to 4 bytes
        frames.append(rows[:, : w * channels].reshape(h, w, channels))


def _run(description: str) -> dict[str, list[np.ndarray]]:
    gst.register()
    pipeline = Gst.parse_launch(description)
    sinks = {name: pipeline.get_by_name(name) for name in ("raw", "out")}
    pipeline.set_state(Gst.State.PLAYING)
    try:
        got = {name: _pull_all(s) for name, s in sinks.items() if s is not None}
        msg = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
        assert msg is None, msg.parse_error()[0].message if msg else ""
    finally:
        pipeline.set_state(Gst.State.NULL)
    return got


@pytest.mark.parametrize(("fmt", "width"), [("RGB", 160), ("RGBA", 160), ("BGR", 158)])
def test_videotestsrc_to_appsink(red_model: Path, fmt: str, width: int) -> None:
    """Red bars are the person (tiny model): kept; the other bars are blurred."""
    caps = f"video/x-raw,format={fmt},width={width},height=120"
    got = _run(
        f"videotestsrc num-buffers=4 pattern=smpte ! {caps} ! tee name=t "
        "t. ! queue ! appsink name=raw sync=false "
        f"t. ! queue ! edgeoptbgremove model={red_model} effect=blur background=10 ! "
        "appsink name=out sync=false"
    )
    assert len(got["raw"]) == len(got["out"]) == 4
    raw, out = got["raw"][0].astype(int), got["out"][0].astype(int)
    assert raw.shape == out.shape == (120, width, len(fmt))
    red = 0 if fmt.startswith("RGB") else 2
    rgb = raw[..., :3]
    person = (rgb[..., red] > 160) & (rgb.sum(-1) - rgb[..., red] < 100)
    # 13x13: the outline itself blends (feathered mask) with the true background colour
    person = cv2.erode(person.astype(np.uint8), np.ones((13, 13), np.uint8)).astype(bool)
    background = cv2.erode((~person).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    assert person.any() and background.any()
    diff = np.abs(out - raw)[..., :3].sum(-1)
    assert diff[person].mean() < 3  # the person is kept
    edges = background & (cv2.Laplacian(rgb.sum(-1).astype(np.float32), -1) != 0)
    assert diff[edges].mean() > 20  # the background's bar edges are blurred away


def test_real_model_keeps_the_person(selfie_model: Path) -> None:
    """Sample-clip frames through appsrc with the zoo model: changes only where background is."""
    frames = list(sample_frames((240, 320), 3))
    seg = load_segmenter("mediapipe-selfie")
    gst.register()
    pipeline = Gst.parse_launch(
        "appsrc name=src format=time caps=video/x-raw,format=BGR,width=320,height=240,"
        "framerate=30/1 ! edgeoptbgremove effect=blur background=16 ! appsink name=out sync=false"
    )
    src = pipeline.get_by_name("src")
    pipeline.set_state(Gst.State.PLAYING)
    for i, frame in enumerate(frames):
        buf = Gst.Buffer.new_wrapped(frame.tobytes())
        buf.pts = i * Gst.SECOND // 30
        src.emit("push-buffer", buf)
    src.emit("end-of-stream")
    outs = _pull_all(pipeline.get_by_name("out"))
    pipeline.set_state(Gst.State.NULL)
    assert len(outs) == len(frames)
    for frame, out in zip(frames, outs, strict=True):
        mask = seg.segment(frame).copy()
        diff = np.abs(out.astype(int) - frame).sum(-1)
        assert diff[mask > 250].mean() < 2
        assert diff[mask < 5].mean() > 10


def test_bad_model_fails_the_pipeline_with_its_reason() -> None:
    with pytest.raises(gst.VideoError, match="neither a zoo model"):
        gst.launch(
            "videotestsrc num-buffers=2 ! video/x-raw,format=RGB ! "
            "edgeoptbgremove model=/no/such.onnx ! fakesink"
        )


def test_any_segmentation_model_through_its_card(
    tmp_path: Path, red_blue_frame: Callable[..., np.ndarray]
) -> None:
    """An NCHW, ImageNet-normalized, softmax model: the card gives what the graph cannot."""
    from _helpers import IMAGENET_MEAN, IMAGENET_STD, make_red_softmax_nchw

    model = make_red_softmax_nchw(tmp_path / "m.onnx")
    card = tmp_path / "card.yaml"
    card.write_text(f"mean: {list(IMAGENET_MEAN)}\nstd: {list(IMAGENET_STD)}\n")
    frame = red_blue_frame((48, 64))
    gst.register()
    pipeline = Gst.parse_launch(
        "appsrc name=src format=time caps=video/x-raw,format=BGR,width=64,height=48,"
        f"framerate=30/1 ! edgeoptbgremove model={model} card={card} effect=mask ! "
        "appsink name=out sync=false"
    )
    src = pipeline.get_by_name("src")
    pipeline.set_state(Gst.State.PLAYING)
    src.emit("push-buffer", Gst.Buffer.new_wrapped(frame.tobytes()))
    src.emit("end-of-stream")
    outs = _pull_all(pipeline.get_by_name("out"))
    pipeline.set_state(Gst.State.NULL)
    assert len(outs) == 1
    out = outs[0].astype(int)
    assert out[:, :20].mean() > 200 and out[:, 44:].mean() < 40  # mask: person white


@pytest.mark.parametrize(
    ("prop", "message"),
    [
        ("threads=-1", r"threads=-1 is out of range: give 0\.\.256"),
        ("every=0", r"every=0 is out of range: give 1 <= x <= 30"),
        ("smoothing=1.0", r"smoothing=1 is out of range: give 0 <= x < 1"),
        ("feather=-2", r"feather=-2 is out of range"),
        ("min-area=0.9", r"min-area=0\.9 is out of range: give 0 <= x <= 0\.5"),
        ("refine=bilateral", r"refine='bilateral' is out of range: give none \| guided"),
    ],
)
def test_out_of_range_properties_fail_the_pipeline_with_their_reason(
    red_model: Path, prop: str, message: str
) -> None:
    with pytest.raises(gst.VideoError, match=message):
        gst.launch(
            "videotestsrc num-buffers=2 ! video/x-raw,format=RGB ! "
            f"edgeoptbgremove model={red_model} {prop} ! fakesink"
        )


def test_every_bgremove_option_is_a_property(red_model: Path) -> None:
    gst.register()
    element = Gst.ElementFactory.make("edgeoptbgremove")
    for name, value in [
        ("every", 3), ("skip-similar", 2.5), ("smoothing", 0.5), ("feather", 4.0),
        ("threshold", 0.6), ("budget-ms", 12.0), ("card", "c.yaml"), ("threads", 2),
        ("min-area", 0.01), ("refine", "guided"),
    ]:  # fmt: skip
        element.set_property(name, value)
        assert (
            element.get_property(name) == pytest.approx(value)
            if isinstance(value, float)
            else element.get_property(name) == value
        )


def test_the_element_the_command_and_the_options_model_agree() -> None:
    """One definition: every mask option's default, range and help come from
    `SegmenterOptions`, for the element's properties and for ``bgremove``'s flags."""
    import typer.main

    from edgeopt.apps.background.segmenter import (
        MASK_OPTIONS,
        SegmenterOptions,
        option_help,
        option_range,
    )
    from edgeopt.cli.main import app

    gst.register()
    element = Gst.ElementFactory.make("edgeoptbgremove")
    flags = {
        o: p
        for p in typer.main.get_command(app).commands["bgremove"].params
        for o in getattr(p, "opts", [])
    }
    for field, name in MASK_OPTIONS.items():
        info = SegmenterOptions.model_fields[field]
        spec = element.find_property(name)
        default = info.default if info.default is not None else 0.0
        assert spec.get_default_value() == default, name
        assert option_range(field) in spec.blurb, (name, spec.blurb)
        flag = flags[f"--{name}"]
        assert flag.default == info.default and flag.help == option_help(field), name
    assert element.get_property("optimize") is True  # the exact rewrite, as bgremove runs


def test_huge_model_input_posts_an_error_not_a_traceback(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    from _helpers import save_model

    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["y"])],
        "huge",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 100_000, 100_000, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 100_000, 100_000, 1])],
    )
    path = save_model(graph, tmp_path / "huge.onnx")
    with pytest.raises(gst.VideoError, match="memory"):
        gst.launch(
            "videotestsrc num-buffers=2 ! video/x-raw,format=RGB,width=64,height=48 ! "
            f"edgeoptbgremove model={path} ! fakesink"
        )


@pytest.fixture
def gst_launch(tmp_path: Path) -> Callable[[str], subprocess.CompletedProcess[str]]:
    """Run gst-launch-1.0 with the plugin's environment and a private plugin registry."""
    exe = shutil.which("gst-launch-1.0")
    if exe is None:
        pytest.skip("gst-launch-1.0 is not installed (apt package gstreamer1.0-tools)")
    plugins = Path("/usr/lib/x86_64-linux-gnu/gstreamer-1.0/libgstpython.so")
    if not plugins.exists() and not list(Path("/usr/lib").glob("*/gstreamer-1.0/libgstpython.so")):
        pytest.skip("gst-python's plugin loader is missing (gstreamer1.0-python3-plugin-loader)")
    env = gst.plugin_env()
    env["GST_REGISTRY"] = str(tmp_path / "registry.bin")

    def run(pipeline: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [exe, "-q", *pipeline.split()],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    return run


def test_gst_launch_file_to_file(
    gst_launch: Callable[[str], subprocess.CompletedProcess[str]],
    red_model: Path,
    tmp_path: Path,
) -> None:
    clip = write_sample(tmp_path / "in.mp4", (120, 160), 1.0)
    out = tmp_path / "out.mp4"
    result = gst_launch(
        f"filesrc location={clip} ! decodebin ! videoconvert ! video/x-raw,format=RGB ! "
        f"edgeoptbgremove model={red_model} effect=blur background=8 ! videoconvert ! "
        f"video/x-raw,format=I420 ! x264enc ! mp4mux ! filesink location={out}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    a, b = cv2.VideoCapture(str(clip)), cv2.VideoCapture(str(out))
    n = 0
    diffs = []
    while True:
        ok_a, fa = a.read()
        ok_b, fb = b.read()
        assert ok_a == ok_b
        if not ok_a:
            break
        n += 1
        diffs.append(np.abs(fa.astype(int) - fb).mean())
    assert n == 30
    assert np.mean(diffs) > 3  # the (non-red) background was blurred


def test_properties_round_trip_and_effect_changes_while_playing(
    red_model: Path, red_blue_frame: Callable[..., np.ndarray]
) -> None:
    gst.register()
    frame = red_blue_frame((120, 160))
    pipeline = Gst.parse_launch(
        "appsrc name=src format=time caps=video/x-raw,format=BGR,width=160,height=120,"
        f"framerate=30/1 ! edgeoptbgremove name=fx model={red_model} effect=none threads=1 ! "
        "appsink name=out sync=false"
    )
    fx, src, out = (pipeline.get_by_name(n) for n in ("fx", "src", "out"))
    assert (fx.get_property("model"), fx.get_property("threads")) == (str(red_model), 1)
    pipeline.set_state(Gst.State.PLAYING)
    try:
        results = []
        for effect in ("none", "mask"):
            fx.set_property("effect", effect)
            src.emit("push-buffer", Gst.Buffer.new_wrapped(frame.tobytes()))
            sample = out.emit("try-pull-sample", 10 * Gst.SECOND)
            buf = sample.get_buffer()
            ok, info = buf.map(Gst.MapFlags.READ)
            assert ok
            results.append(np.frombuffer(info.data, np.uint8).reshape(frame.shape).copy())
            buf.unmap(info)
    finally:
        pipeline.set_state(Gst.State.NULL)
    np.testing.assert_array_equal(results[0], frame)  # effect=none: untouched
    assert results[1][:, :60].min() > 240 and results[1][:, 100:].max() < 15  # the mask
