"""Model zoo: every model pulled for real with its card, the wheel cache, and every failure path.

The pull-everything test shares one cache folder per test module, so each package's wheel is
downloaded once (mediapipe, rapidocr-onnxruntime, silero-vad), not once per model.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import edgeopt
from edgeopt import zoo
from edgeopt.artifact import load_onnx
from edgeopt.card import CARD_KEY, card_of
from edgeopt.convert import convert
from edgeopt.errors import ConfigError, ModelFetchError
from edgeopt.tasks import DetectionTask, GenericTask, SegmentationTask

PERFECT = {"f1": 1.0, "nme": 0.0, "top1": 1.0, "text": 1.0}


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One cache folder for the module: each package's wheel is downloaded once."""
    folder = tmp_path_factory.mktemp("zoo-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEOPT_CACHE_DIR", str(folder))
        yield folder


def _pull(name: str, models_dir: Path) -> Path:
    """`zoo.pull`, skipping (and saying why) only when the registry cannot be reached."""
    try:
        return zoo.pull(name, models_dir=models_dir)
    except ModelFetchError as e:
        if "could not download" in str(e):
            pytest.skip(f"the registry is unreachable: {e}")
        raise


def _run(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


@pytest.mark.parametrize("name", zoo.names())
def test_pull_writes_the_card_and_runs(name: str, shared_cache: Path, models_dir: Path) -> None:
    entry = zoo.get(name)
    path = _pull(name, models_dir)
    assert path == shared_cache / name / "model.onnx"
    assert zoo._sha256((shared_cache / name / entry.filename).read_bytes()) == entry.sha256
    art = load_onnx(path)
    assert card_of(art) == entry.card
    shapes = {s.name: s.shape for s in art.inputs}
    for input_name, want in entry.input_shapes.items():
        got = shapes[input_name]
        assert len(got) == len(want)
        assert all(not isinstance(g, int) or g == w for g, w in zip(got, want, strict=True))

    out = _run(path, zoo.example_feeds(entry.card, art.inputs))
    assert all(np.isfinite(y).all() for y in out.values())
    task = entry.card.task_or_generic()
    if not isinstance(task, SegmentationTask):  # segmentation is scored through the interface
        scores = task.score([out], [out])
        assert scores[task.metric] == PERFECT.get(task.metric, scores[task.metric])
        if isinstance(task, GenericTask):
            assert scores[task.metric] >= 100  # identical outputs: the SNR cap
    face = entry.card.interface
    if face is not None and face.output_name is not None:
        mask = face.person_probability(out[face.output_name])
        assert mask.shape == face.input_size
        assert 0 <= mask.min() <= mask.max() <= 1
    for state_in, state_out in entry.card.state.items():  # the state feeds back
        feeds = zoo.example_feeds(entry.card, art.inputs) | {state_in: out[state_out]}
        assert np.isfinite(_run(path, feeds)[state_out]).all()

    mtime = path.stat().st_mtime_ns
    assert zoo.pull(name, models_dir=models_dir) == path
    assert path.stat().st_mtime_ns == mtime  # second pull equals the cache: reused


def test_each_wheel_is_kept_once(shared_cache: Path, models_dir: Path) -> None:
    for name in zoo.names():
        _pull(name, models_dir)
    wheels = shared_cache / "wheels"  # none when every file came from the offline folder
    folders = sorted(wheels.iterdir()) if wheels.is_dir() else []
    assert len(folders) <= len({e.package for e in zoo.ZOO.values()}) == 3
    assert all(len(_files(f)) == 1 for f in folders), _files(shared_cache / "wheels")


def test_card_json_is_in_the_file_and_the_table(shared_cache: Path, models_dir: Path) -> None:
    path = _pull("silero-vad", models_dir)
    props = load_onnx(path).metadata["props"]
    assert json.loads(props[CARD_KEY]) == json.loads(zoo.get("silero-vad").card.to_json())
    rec = load_onnx(_pull("ppocr-v4-rec", models_dir)).metadata["props"]
    assert "character" in rec  # the model's own metadata (its symbol list) is kept
    info = zoo.get("mediapipe-pose-detection").describe()
    assert info["inputs"] == {"input_1": [1, 224, 224, 3]}
    assert info["card"]["task"]["kind"] == "detection"


def _fake_wheel(folder: Path, members: dict[str, bytes]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return wheel


def test_wheel_is_downloaded_once_and_refetched_when_bad(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    files = {"fake/a.onnx": b"model a", "fake/b.onnx": b"model b"}
    entries = [
        dataclasses.replace(
            zoo.get("silero-vad"),
            name=f"fake-{k}",
            package="fake==1.0",
            member=f"fake/{k}.onnx",
            sha256=zoo._sha256(files[f"fake/{k}.onnx"]),
        )
        for k in "ab"
    ]
    for entry in entries:
        monkeypatch.setitem(zoo.ZOO, entry.name, entry)
    calls: list[str] = []
    content = dict(files)

    def download(entry: zoo.ZooModel) -> Path:
        calls.append(entry.name)
        return _fake_wheel(zoo._wheel_folder(entry), content)

    monkeypatch.setattr(zoo, "_download_wheel", download)
    empty = tmp_path / "no-offline-copies"
    assert zoo.source_file("fake-a", empty).read_bytes() == b"model a"
    assert zoo.source_file("fake-b", empty).read_bytes() == b"model b"
    assert calls == ["fake-a"]  # one wheel for both

    (cache / "fake-b" / "b.onnx").unlink()
    (wheel,) = _files(cache / "wheels")
    wheel.write_bytes(b"not a zip")  # a damaged cached wheel is fetched again
    assert zoo.source_file("fake-b", empty).read_bytes() == b"model b"
    assert calls == ["fake-a", "fake-b"]

    (cache / "fake-b" / "b.onnx").unlink()
    (wheel,) = _files(cache / "wheels")
    wheel.unlink()
    content["fake/b.onnx"] = b"another release"  # a wheel that gives a wrong file is refused
    with pytest.raises(ModelFetchError, match="does not match the expected"):
        zoo.source_file("fake-b", empty)
    assert _files(cache / "wheels") == []  # and not kept


def test_example_feeds_refuse_an_input_the_card_does_not_cover(
    shared_cache: Path, models_dir: Path
) -> None:
    art = load_onnx(_pull("silero-vad", models_dir))
    card = zoo.get("silero-vad").card.model_copy(update={"values": {}})
    with pytest.raises(ConfigError, match="input 'sr' is not the card's image, audio, value"):
        zoo.example_feeds(card, art.inputs)
    with pytest.raises(ConfigError, match="input 'state' has dynamic shape"):
        zoo.example_feeds(card.model_copy(update={"shapes": {}, "values": {"sr": 1}}), art.inputs)


def test_wrong_card_fails_verification(
    cache: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = zoo.get("mediapipe-face-detection-short")
    task = entry.card.task
    assert isinstance(task, DetectionTask) and task.anchors is not None
    anchors = task.anchors.model_copy(update={"strides": (8, 16, 16, 32)})  # 800 anchors
    bad = entry.card.model_copy(update={"task": task.model_copy(update={"anchors": anchors})})
    monkeypatch.setitem(zoo.ZOO, entry.name, dataclasses.replace(entry, card=bad))
    with pytest.raises(ModelFetchError, match="do not match the card's 800 anchors"):
        _pull(entry.name, models_dir)
    assert not (cache / entry.name / "model.onnx").exists()


@pytest.mark.parametrize("damage", ["truncated", "empty", "another valid model"])
def test_tampered_cache_is_rebuilt(
    cache: Path, models_dir: Path, conv_model: Path, damage: str
) -> None:
    path = zoo.pull("mediapipe-selfie", models_dir=models_dir)
    good = path.read_bytes()
    bad = {
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "another valid model": conv_model.read_bytes(),  # a record beside it would not help
    }[damage]
    path.write_bytes(bad)
    (path.parent / "model.json").write_text(
        json.dumps({"onnx_sha256": zoo._sha256(bad), "source_sha256": "forged"})
    )
    assert zoo.pull("mediapipe-selfie", models_dir=models_dir).read_bytes() == good


def test_tampered_onnx_source_model_is_rebuilt(shared_cache: Path, models_dir: Path) -> None:
    path = _pull("ppocr-v4-cls", models_dir)
    good = path.read_bytes()
    path.write_bytes(good.replace(b"edgeopt.card", b"edgeopt.cord"))
    assert zoo.pull("ppocr-v4-cls", models_dir=models_dir).read_bytes() == good


def test_tampered_cached_source_is_fetched_again(cache: Path, models_dir: Path) -> None:
    path = zoo.pull("mediapipe-selfie", models_dir=models_dir)
    good = path.read_bytes()
    source = cache / "mediapipe-selfie" / "selfie_segmentation.tflite"
    source.write_bytes(source.read_bytes()[:-10] + b"0123456789")
    assert zoo.pull("mediapipe-selfie", models_dir=models_dir).read_bytes() == good
    assert zoo._sha256(source.read_bytes()) == zoo.get("mediapipe-selfie").sha256


def test_corrupt_offline_copy_is_refused(cache: Path, tmp_path: Path, models_dir: Path) -> None:
    bad = tmp_path / "models" / "mediapipe-selfie"
    bad.mkdir(parents=True)
    data = bytearray((models_dir / "mediapipe-selfie" / "selfie_segmentation.tflite").read_bytes())
    data[1000] ^= 0xFF
    (bad / "selfie_segmentation.tflite").write_bytes(bytes(data))
    with pytest.raises(ModelFetchError, match="does not match mediapipe-selfie's 9ee168ec"):
        zoo.pull("mediapipe-selfie", models_dir=tmp_path / "models")
    assert _files(cache) == []


def test_corrupt_offline_onnx_copy_is_refused(cache: Path, tmp_path: Path) -> None:
    bad = tmp_path / "models" / "silero-vad"
    bad.mkdir(parents=True)
    (bad / "silero_vad.onnx").write_bytes(b"\x08\x07 not the model")
    with pytest.raises(ModelFetchError, match="does not match silero-vad's 1a153a22"):
        zoo.pull("silero-vad", models_dir=tmp_path / "models")
    assert _files(cache) == []


def test_failed_download_is_clear_and_leaves_nothing(
    cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    entry = dataclasses.replace(zoo.get("mediapipe-selfie"), package="edgeopt-no-such-pkg==0.0.0")
    monkeypatch.setitem(zoo.ZOO, "mediapipe-selfie", entry)
    monkeypatch.delenv("EDGEOPT_MODELS_DIR", raising=False)
    with pytest.raises(ModelFetchError, match=r"could not download edgeopt-no-such-pkg==0\.0\.0"):
        zoo.pull("mediapipe-selfie", models_dir=tmp_path / "empty")
    assert _files(cache) == []


def test_unknown_name() -> None:
    with pytest.raises(ConfigError, match="unknown model 'nope'; known models: ") as info:
        zoo.get("nope")
    assert all(name in str(info.value) for name in zoo.names())


def test_table_is_consistent() -> None:
    assert len(zoo.ZOO) == 18
    for name, entry in zoo.ZOO.items():
        assert name == entry.name and name.islower() and " " not in name
        assert len(entry.sha256) == 64 and entry.license in ("Apache-2.0", "MIT")
        assert entry.source == entry.filename.rsplit(".", 1)[1]
        assert entry.platform_wheel == entry.package.startswith("mediapipe==")
        assert entry.card.task is not None
    offline = [(e.family, e.filename) for e in zoo.ZOO.values()]
    assert len(set(offline)) == len(offline)  # no two entries share an offline file


def test_load_and_convert_tflite(cache: Path, models_dir: Path, tmp_path: Path) -> None:
    src = models_dir / "mediapipe-selfie" / "selfie_segmentation_landscape.tflite"
    art = edgeopt.load(src)  # converted into the cache
    assert art.path.is_relative_to(cache)
    assert edgeopt.load(src).path == art.path
    out = convert(src, tmp_path / "out.onnx", layout="nchw")
    assert out.inputs[0].shape == (1, 3, 144, 256)
    x = np.random.default_rng(0).random((1, 144, 256, 3), dtype=np.float32)
    nhwc = edgeopt.compile(art).run({"input_1": x})["segment_back"]
    nchw = edgeopt.compile(out).run({"input_1": x.transpose(0, 3, 1, 2).copy()})
    np.testing.assert_allclose(next(iter(nchw.values())).reshape(nhwc.shape), nhwc, atol=1e-5)
    shutil.rmtree(cache)
