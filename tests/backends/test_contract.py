"""Contract test: every available backend compiles, matches the ORT fp32 reference, round-trips.

For each backend that is installed here and each model (tiny graphs built in code, and the real
MediaPipe selfie model when the zoo can provide it): compile -> run -> compare with ONNX
Runtime's fp32 output -> save -> load in a fresh process -> the same outputs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeopt
from backends._models import mini_selfie, mlp
from edgeopt.backends.base import random_feeds
from edgeopt.errors import EdgeoptError
from edgeopt.registry import backend_names, get_backend

BACKENDS = [n for n in backend_names() if get_backend(n).is_available()]
# Backends that run a model's original file rather than its ONNX graph (LiteRT runs the
# .tflite a model was imported from): the tiny ONNX graphs built here have none.
NEEDS_SOURCE_FILE = {"litert"}
BUILT_HERE = {"conv.onnx", "mini_selfie.onnx", "mlp.onnx"}
# Options that make each backend compute in fp32, so it can be held to the reference.
OPTIONS: dict[str, dict[str, object]] = {
    "onnxruntime": {"threads": 1},
    "openvino": {"threads": 1, "precision": "f32"},
    "tvm": {"threads": 1},
}


@pytest.fixture(
    params=[
        "conv",
        "mini_selfie",
        "mlp",
        pytest.param("mediapipe-selfie", marks=pytest.mark.slow),
    ]
)
def model(request: pytest.FixtureRequest, tmp_path: Path, conv_model: Path) -> Path:
    """A model path: tiny graphs built here, or the real MediaPipe model from the zoo."""
    if request.param == "conv":
        return conv_model
    if request.param == "mini_selfie":
        return mini_selfie(tmp_path / "mini_selfie.onnx")
    if request.param == "mlp":
        return mlp(tmp_path / "mlp.onnx")
    try:
        from edgeopt import zoo

        return Path(zoo.pull(request.param))
    except (ImportError, EdgeoptError) as e:
        pytest.skip(f"the zoo cannot provide {request.param}: {e}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_contract(backend: str, model: Path, tmp_path: Path) -> None:
    if backend in NEEDS_SOURCE_FILE and model.name in BUILT_HERE:
        pytest.skip(f"{backend} runs only models imported from their original file")
    artifact = edgeopt.load(model)
    feeds = random_feeds(artifact.inputs, seed=3)
    reference = edgeopt.compile(artifact, "onnxruntime", {"optimization": "disable"}).run(feeds)

    compiled = edgeopt.compile(artifact, backend, OPTIONS.get(backend, {}))
    outputs = compiled.run(feeds)
    assert set(outputs) == {o.name for o in artifact.outputs}
    for name, want in reference.items():
        assert outputs[name].shape == want.shape, name
        assert outputs[name].dtype == want.dtype, name
        np.testing.assert_allclose(outputs[name], want, rtol=1e-3, atol=1e-4, err_msg=name)

    saved = compiled.save(tmp_path / f"saved-{backend}")
    np.savez(tmp_path / "feeds.npz", **feeds)
    code = (
        "import numpy as np\n"
        "from edgeopt.registry import get_backend\n"
        f"m = get_backend({backend!r}).load({str(saved)!r})\n"
        f"feeds = dict(np.load({str(tmp_path / 'feeds.npz')!r}))\n"
        f"np.savez({str(tmp_path / 'out.npz')!r}, **m.run(feeds))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    reloaded = dict(np.load(tmp_path / "out.npz"))
    assert set(reloaded) == set(outputs)
    for name, value in outputs.items():
        np.testing.assert_allclose(reloaded[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_availability_check_imports_no_compiler() -> None:
    code = (
        "import sys\n"
        "from edgeopt.registry import get_backend\n"
        "assert get_backend('tvm').is_available() in (True, False)\n"
        "assert get_backend('openvino').is_available() in (True, False)\n"
        "heavy = [m for m in ('tvm', 'openvino', 'tvm_ffi') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
