"""The known models, with their cards: each card read from the model's own pipeline.

The comment above each group names the file its card was read from (MediaPipe's graphs:
``mediapipe/modules/<module>/*.pbtxt`` at tag v0.10.14; rapidocr-onnxruntime 1.4.4's config
and pre-processing; silero-vad 6.2.3's ``utils_vad.py``). Nothing here is guessed.
"""

from __future__ import annotations

from typing import Literal

from edgeopt.card import AudioInput, ModelCard
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
from edgeopt.zoo.entry import ZooModel

__all__ = ["ZOO"]

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
