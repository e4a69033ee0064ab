"""Model zoo: verified pull from the offline folder, cache reuse, and every failure path."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import edgeopt
from edgeopt import zoo
from edgeopt.convert import convert
from edgeopt.errors import ConfigError, ModelFetchError


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(folder))
    return folder


@pytest.mark.parametrize("name", zoo.names())
def test_pull_converts_verifies_and_caches(name: str, cache: Path, models_dir: Path) -> None:
    entry = zoo.get(name)
    path = zoo.pull(name, models_dir=models_dir)
    assert path == cache / name / "model.onnx"
    assert zoo._sha256((cache / name / entry.filename).read_bytes()) == entry.sha256
    art = edgeopt.load(path)
    h, w = entry.input_size
    assert [(s.name, s.shape) for s in art.inputs] == [(entry.input_name, (1, h, w, 3))]
    assert [s.name for s in art.outputs] == [entry.output_name]
    mtime = path.stat().st_mtime_ns
    assert zoo.pull(name, models_dir=models_dir) == path
    assert path.stat().st_mtime_ns == mtime  # second pull reuses the cache


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
    with pytest.raises(ConfigError, match="unknown model 'nope'; known models: mediapipe-selfie"):
        zoo.get("nope")


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
