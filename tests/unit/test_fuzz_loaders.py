"""Fuzz the other doors: recipes, video containers, saved OpenVINO artifacts, .pt2 archives.

Each mutated input must end in edgeopt's own typed error (or load, when the mutation was
harmless), never a crash, a hang or a traceback of another library. ``make test`` runs a
quick sample of each; the ``slow`` marker runs the full counts (CI runs both).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeopt.errors import BackendError, ConfigError, EdgeoptError

RECIPE = b"""\
passes:
  - name: simplify
  - name: quantize
    options: {mode: static, iou_bound: 0.98}
data: {source: builtin, calibration_count: 8}
"""


def _mutate(data: bytes, edits: list[tuple[float, int]]) -> bytes:
    out = bytearray(data)
    for where, value in edits:
        out[int(where * len(out))] = value
    return bytes(out)


EDITS = st.lists(st.tuples(st.floats(0, 0.9999), st.integers(0, 255)), min_size=1, max_size=6)


def _settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def _recipe_case(tmp_path: Path, data: bytes) -> None:
    from edgeopt.recipe import load_recipe

    path = tmp_path / "r.yaml"
    path.write_bytes(data)
    try:
        load_recipe(path)
    except ConfigError as e:
        assert str(path) in str(e) and "\n" not in str(e).strip()[:1]


@_settings(150)
@given(edits=EDITS)
def test_recipe_mutations(tmp_path: Path, edits: list[tuple[float, int]]) -> None:
    _recipe_case(tmp_path, _mutate(RECIPE, edits))


@pytest.mark.slow
@_settings(1500)
@given(edits=EDITS)
def test_recipe_mutations_full(tmp_path: Path, edits: list[tuple[float, int]]) -> None:
    _recipe_case(tmp_path, _mutate(RECIPE, edits))


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from edgeopt.apps.background.portrait_clip import write_sample

    return write_sample(tmp_path_factory.mktemp("v") / "c.mp4", (48, 64), 0.5).read_bytes()


def _video_case(tmp_path: Path, data: bytes) -> None:
    from edgeopt.apps.background.video import open_file

    path = tmp_path / "v.mp4"
    path.write_bytes(data)
    try:
        source = open_file(path)
    except EdgeoptError as e:
        assert str(path) in str(e)
        return
    try:
        for _ in range(100):  # a declared count may lie: read a bounded number of frames
            if source.read() is None:
                break
    finally:
        source.close()


@_settings(60)
@given(edits=EDITS, header=st.booleans())
def test_video_container_mutations(
    clip_bytes: bytes, tmp_path: Path, edits: list[tuple[float, int]], header: bool
) -> None:
    # Half the cases aim at the container's boxes (ftyp/moov at either end), not the payload.
    data = clip_bytes
    if header:
        head, tail = data[:256], data[-2048:]
        data = _mutate(head, edits) + data[256:-2048] + _mutate(tail, edits)
    else:
        data = _mutate(data, edits)
    _video_case(tmp_path, data)


@pytest.mark.slow
@_settings(600)
@given(edits=EDITS, header=st.booleans())
def test_video_container_mutations_full(
    clip_bytes: bytes, tmp_path: Path, edits: list[tuple[float, int]], header: bool
) -> None:
    data = clip_bytes
    if header:
        data = _mutate(data[:256], edits) + data[256:-2048] + _mutate(data[-2048:], edits)
    else:
        data = _mutate(data, edits)
    _video_case(tmp_path, data)


@pytest.fixture(scope="module")
def saved_openvino(conv_model_module: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("openvino")
    import edgeopt

    return edgeopt.compile(conv_model_module, "openvino").save(tmp_path_factory.mktemp("ov"))


@pytest.fixture(scope="module")
def conv_model_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    from _helpers import conv_weights, save_model

    w, b = conv_weights()
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    return save_model(graph, tmp_path_factory.mktemp("m") / "conv.onnx")


@_settings(80)
@given(edits=EDITS, target=st.sampled_from(["meta", "blob"]))
def test_openvino_artifact_mutations(
    saved_openvino: Path, tmp_path: Path, edits: list[tuple[float, int]], target: str
) -> None:
    from edgeopt.backends.openvino import OpenVinoBackend

    folder = tmp_path / "art"
    folder.mkdir(exist_ok=True)
    for f in saved_openvino.iterdir():
        data = f.read_bytes()
        is_meta = f.suffix == ".json"
        if (target == "meta") == is_meta:
            data = _mutate(data, edits)
        (folder / f.name).write_bytes(data)
    try:
        OpenVinoBackend().load(folder)
    except BackendError as e:
        assert str(folder) in str(e)
    except ConfigError:
        pass  # a mutated option value, named by the options model


def test_openvino_meta_without_sha_is_refused(saved_openvino: Path, tmp_path: Path) -> None:
    from edgeopt.backends.openvino import OpenVinoBackend

    folder = tmp_path / "art"
    folder.mkdir()
    for f in saved_openvino.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    meta_path = next(folder.glob("*.json"))
    meta = json.loads(meta_path.read_text())
    del meta["sha256"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(BackendError, match="damaged or was changed"):
        OpenVinoBackend().load(folder)
