"""Person segmentation on video frames: pre-process, run a `CompiledModel`, post-process the mask.

The `Segmenter` wraps any `CompiledModel` from any backend — the very object ``edgeopt.compile``
returns and the benchmark measures — plus the model's `ModelInterface` (a zoo entry's own, or
what the graph says with the user's flags on top). Every step is a handful of vectorized
OpenCV/numpy calls on whole arrays; no Python runs per pixel:

- pre-process: `ModelInterface.preprocess`, the code fidelity and calibration run too: one
  ``cv2.resize`` of the frame to the model's size (bilinear: 10x cheaper than area averaging at
  720p and indistinguishable in the masks), one ``cvtColor`` to the model's colour order, the
  per-channel normalization into a reused float32 buffer.
- the output read as a person probability by `ModelInterface.person_probability` (sigmoid or
  softmax applied where the model gives logits, the person channel picked).
- post-process, done at the model's resolution where it is cheap: temporal smoothing (an
  exponential moving average over frames, against flicker), an optional hard threshold, edge
  feathering (a Gaussian blur whose sigma is scaled from output pixels), conversion to uint8,
  and only then one bilinear upscale to the frame size.
- refinement (`refine`): stray blobs and small holes dropped at the model's resolution, and
  optionally the upscaled mask's edges snapped to the frame's (guided filter).
- frame skipping: with ``every=N`` the model runs on one frame in N and the mask is reused.

MediaPipe stretches the whole frame to the square 256x256 input (no letterbox), and so do we;
the upscale undoes the stretch exactly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import psutil
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.apps.background.cpuload import SpareCores
from edgeopt.apps.background.refine import GuidedRefiner, remove_small_blobs
from edgeopt.apps.background.timing import StageTimes
from edgeopt.artifact import load_onnx
from edgeopt.backends.base import BackendOptions, CompiledModel
from edgeopt.backends.saved import is_saved, load_saved, read_saved
from edgeopt.errors import ConfigError, InputMismatchError
from edgeopt.interface import ModelInterface, Order, infer_interface

__all__ = [
    "MASK_OPTIONS",
    "Order",
    "Segmenter",
    "SegmenterOptions",
    "StageTimes",
    "load_segmenter",
    "option_help",
    "option_range",
    "ort_layout_file",
    "resolve_model",
]


class SegmenterOptions(BaseModel):
    """How masks are post-processed and how often the model runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    smoothing: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Temporal smoothing: weight of the previous mask in a moving average "
        "(0: none; 0.5 halves flicker at the cost of a little lag).",
    )
    feather: float = Field(
        default=2.0,
        ge=0.0,
        le=100.0,
        description="Edge feathering: Gaussian sigma in frame pixels.",
    )
    threshold: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="Hard threshold on the person probability; unset (0 on the GStreamer "
        "element) keeps a soft alpha.",
    )
    every: int = Field(
        default=1,
        ge=1,
        le=30,
        description="Run the model on one frame in N; reuse the mask between.",
    )
    similar: float = Field(
        default=0.0,
        ge=0.0,
        le=255.0,
        description="Reuse the last mask while a 32x18 grey thumbnail of the frame differs "
        "from the last segmented one by less than this mean (grey levels); 0: off.",
    )
    min_area: float = Field(
        default=0.002,
        ge=0.0,
        le=0.5,
        description="Drop person blobs, and fill holes, smaller than this fraction of the "
        "frame (at the model's resolution); 0: off.",
    )
    refine: Literal["none", "guided"] = Field(
        default="none",
        description="Edge refinement of the upscaled mask: 'guided' snaps it to the frame's "
        "edges (fast guided filter, 3-6 ms at 720p); 'none': off.",
    )


MASK_OPTIONS: dict[str, str] = {
    "every": "every",
    "similar": "skip-similar",
    "smoothing": "smoothing",
    "feather": "feather",
    "threshold": "threshold",
    "min_area": "min-area",
    "refine": "refine",
}
"""`SegmenterOptions` field -> its name as a ``bgremove`` flag (``--skip-similar``) and as a
GStreamer element property (``skip-similar``): one definition of each option, its default,
range and help, read by both (see `option_range` and `option_help`)."""


def option_range(field: str) -> str:
    """The range `SegmenterOptions` enforces on ``field``, as ``0 <= x < 1`` (or its choices)."""
    info = SegmenterOptions.model_fields[field]
    choices = getattr(info.annotation, "__args__", ())
    if field == "refine":
        return " | ".join(str(c) for c in choices)
    lo = hi = ""
    for m in info.metadata:
        if getattr(m, "ge", None) is not None:
            lo = f"{m.ge:g} <= "
        if getattr(m, "gt", None) is not None:
            lo = f"{m.gt:g} < "
        if getattr(m, "le", None) is not None:
            hi = f" <= {m.le:g}"
        if getattr(m, "lt", None) is not None:
            hi = f" < {m.lt:g}"
    return f"{lo}x{hi}"


def option_help(field: str) -> str:
    """``field``'s description with its range, for ``--help`` and ``gst-inspect-1.0``."""
    info = SegmenterOptions.model_fields[field]
    return f"{info.description} Range: {option_range(field)}."


class Segmenter:
    """Frames in, person masks (uint8, frame-sized, 255 = person) out.

    Args:
        model: A compiled segmentation model (``edgeopt.compile(...)``, any backend).
        interface: Its input/output names, size, layout, colour order, normalization and
            output meaning; read from the
            model's interface when None.
        options: Post-processing and frame skipping.
        fallback: The same model compiled for fewer threads, run instead of ``model`` while
            other processes leave fewer than ``needs`` of this process's CPUs idle
            (`cpuload.SpareCores`); None: ``model`` always.
        needs: The idle CPUs ``model`` needs to be the faster one (its thread count).
        spare: Where the idle CPUs are read: a callable giving the current estimate (None
            until it has one); default: the kernel's counters through `cpuload.SpareCores`.
    """

    def __init__(
        self,
        model: CompiledModel,
        interface: ModelInterface | None = None,
        options: SegmenterOptions | None = None,
        fallback: CompiledModel | None = None,
        needs: int = 2,
        spare: Callable[[], float | None] | None = None,
    ) -> None:
        self.model = model
        self.fallback = fallback
        self._needs = needs
        self._spare = spare or (SpareCores().update if fallback is not None else None)
        self._busy = False
        self.fallback_runs = 0
        self.interface = interface or _interface_of(model)
        if not self.interface.has_mask:
            raise ConfigError(
                f"{model.outputs[0].name!r} is not read as a person mask: give the model's "
                "output interface (--output-activation, --person-channel, or --card)"
            )
        h, w = self.interface.input_size
        need = h * w * 3 * (4 + 1) * 2  # float32 input + uint8 resize, with headroom
        available = int(psutil.virtual_memory().available)
        if need > available // 2:
            raise ConfigError(
                f"input {self.interface.input_name!r} of {h}x{w} pixels needs "
                f"{need / 2**30:.1f} GiB of memory per frame, more than half of the "
                f"{available / 2**30:.1f} GiB available: use a model with a smaller input"
            )
        self.options = options or SegmenterOptions()
        self.every = self.options.every
        self._buf: np.ndarray | None = None
        self._prev: np.ndarray | None = None
        self._last_mask: np.ndarray | None = None
        self._mask: np.ndarray | None = None
        self._small: np.ndarray | None = None
        self._refiner = GuidedRefiner()
        self._frame = 0
        self._last_thumb: np.ndarray | None = None
        self.model_runs = 0
        self.reused = 0
        self.preprocess(np.zeros((8, 8, 3), np.uint8))  # its machine code, before the first frame

    def reset(self) -> None:
        """Forget the previous frames (start of a new video)."""
        self._prev = None
        self._last_mask = None
        self._last_thumb = None
        self._frame = 0

    def preprocess(self, frame: np.ndarray, order: Order = "BGR") -> np.ndarray:
        """The model's input tensor for one uint8 frame (a reused buffer: copy it to keep it).

        This is `ModelInterface.preprocess`: the code fidelity and calibration use too.

        Raises:
            InputMismatchError: Not an HxWx3/4 uint8 frame.
        """
        try:
            self._buf = self.interface.preprocess(frame, order, self._buf)
        except ConfigError as e:
            raise InputMismatchError(str(e)) from e
        return self._buf

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Run the model; returns the person probability at the model's resolution, HxW float32.

        Raises:
            BackendError: The backend failed. ConfigError: the output is not a mask.
        """
        model = self.model
        if self.fallback is not None and self._crowded():
            model = self.fallback
            self.fallback_runs += 1
        name = self.interface.output_name or model.outputs[0].name
        out = model.run({self.interface.input_name: tensor})[name]
        prob = self.interface.person_probability(out)
        self.model_runs += 1
        return prob

    def _crowded(self) -> bool:
        """Whether other processes take the CPUs ``model`` needs (with some hysteresis: the
        counters are read every quarter of a second)."""
        assert self._spare is not None  # made with the fallback
        spare = self._spare()
        if spare is not None:
            if self._busy and spare > self._needs - 0.2:
                self._busy = False
            elif not self._busy and spare < self._needs - 0.5:
                self._busy = True
        return self._busy

    def postprocess(self, prob: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The frame-sized uint8 mask for a probability map; updates the temporal state.

        The mask is a buffer reused by the next call: copy it to keep it.

        Args:
            prob: Person probability at the model's resolution.
            size: (height, width) of the frame.
        """
        opts = self.options
        if opts.smoothing > 0 and self._prev is not None and self._prev.shape == prob.shape:
            prob = cv2.addWeighted(self._prev, opts.smoothing, prob, 1.0 - opts.smoothing, 0.0)
        self._prev = prob
        if opts.threshold is not None:
            small = np.where(prob >= opts.threshold, np.uint8(255), np.uint8(0))
        else:
            small = cv2.convertScaleAbs(prob, alpha=255.0)
        small = remove_small_blobs(small, opts.min_area)
        height, width = size
        if opts.feather > 0:
            sigma = opts.feather * small.shape[1] / width
            if sigma >= 0.3:
                small = cv2.GaussianBlur(small, (0, 0), sigma)
        self._small = small
        if self._mask is None or self._mask.shape != (height, width):
            self._mask = np.empty((height, width), np.uint8)
        # Upscaling into a reused buffer: a fresh 1 MB array per frame costs page faults.
        return cv2.resize(small, (width, height), self._mask, interpolation=cv2.INTER_LINEAR)

    @property
    def small_mask(self) -> np.ndarray | None:
        """The model-resolution uint8 mask that the last mask is the bilinear upscale of.

        The compositor reads the mask's maximum per cell from it almost free; None when there
        is none (no mask yet, or one refined at full resolution).
        """
        return self._small

    def segment(
        self, frame: np.ndarray, order: Order = "BGR", times: StageTimes | None = None
    ) -> np.ndarray:
        """The person mask of one frame, HxW uint8 (255 = person); valid until the next call.

        With ``every > 1`` the model runs on one frame in ``every`` and the other frames reuse
        the last mask (no pre/infer/post samples are recorded for them).

        Args:
            frame: HxWxC uint8 image in ``order``.
            order: Its channel order.
            times: Where to record pre / infer / post milliseconds, if given.
        """
        size = (frame.shape[0], frame.shape[1])
        have = self._last_mask is not None and self._last_mask.shape == size
        reuse = have and self._frame % self.every != 0
        self._frame += 1
        thumb = None
        if self.options.similar > 0 and not reuse:
            # obs-backgroundremoval's similarity skip: a 32x18 grey thumbnail of the frame
            # against the one of the last frame the model ran on (not the previous frame, so
            # a slow drift still triggers a run).
            code = cv2.COLOR_BGR2GRAY if order in ("BGR", "RGB") else cv2.COLOR_BGRA2GRAY
            # Two steps: INTER_AREA straight from 720p costs 0.5 ms, this 0.03 ms; each
            # thumbnail pixel still averages 64 frame pixels (sensor noise stays far below T).
            small = cv2.resize(frame, (128, 72), interpolation=cv2.INTER_LINEAR)
            small = cv2.resize(small, (32, 18), interpolation=cv2.INTER_AREA)
            thumb = cv2.cvtColor(small, code).astype(np.int16)
            last = self._last_thumb
            if have and last is not None:
                reuse = float(np.abs(thumb - last).mean()) < self.options.similar
        if reuse and self._last_mask is not None:
            self.reused += 1
            return self._last_mask
        self._last_thumb = thumb
        t0 = time.perf_counter()
        tensor = self.preprocess(frame, order)
        t1 = time.perf_counter()
        prob = self.infer(tensor)
        t2 = time.perf_counter()
        mask = self.postprocess(prob, size)
        if self.options.refine == "guided":
            self._refiner(mask, frame, order, mask)
            self._small = None  # no longer the upscale of the model-resolution mask
        t3 = time.perf_counter()
        if times is not None:
            times.add("pre", (t1 - t0) * 1e3)
            times.add("infer", (t2 - t1) * 1e3)
            times.add("post", (t3 - t2) * 1e3)
        self._last_mask = mask
        return mask


def _interface_of(model: CompiledModel) -> ModelInterface:
    """The interface a compiled model's input and output shapes imply (no graph at hand)."""
    from edgeopt.interface import _mask_layout

    spec = model.inputs[0]
    shape = spec.shape
    layout: Literal["nhwc", "nchw"]
    h: Any
    w: Any
    if len(shape) == 4 and shape[3] == 3 and isinstance(shape[1], int):
        layout, h, w = "nhwc", shape[1], shape[2]
    elif len(shape) == 4 and shape[1] == 3:
        layout, h, w = "nchw", shape[2], shape[3]
    else:
        raise ConfigError(
            f"input {spec.name!r} has shape {shape}: a segmenter needs an image input "
            "[1,H,W,3] or [1,3,H,W]; give the model's interface explicitly"
        )
    if not (isinstance(h, int) and isinstance(w, int)):
        raise ConfigError(f"input {spec.name!r} has dynamic size {shape}; give input_size")
    out = model.outputs[0]
    out_layout = _mask_layout(tuple(out.shape), h, w)
    if out_layout is None:
        raise ConfigError(
            f"output {out.name!r} has shape {list(out.shape)}: not a person mask of the "
            f"input's aspect ([1,H,W,C] or [1,C,H,W] with C = 1 or 2)"
        )
    return ModelInterface(
        input_name=spec.name,
        input_size=(h, w),
        layout=layout,
        output_name=out.name,
        output_layout=out_layout,
    )


def resolve_model(
    model: str, variant: str | os.PathLike[str] | None = None, models_dir: Path | None = None
) -> tuple[Path, ModelInterface | None]:
    """The ONNX file to compile and, for zoo models, their interface.

    Args:
        model: A zoo name (``mediapipe-selfie``) or the path of an ``.onnx`` file.
        variant: An optimized ``.onnx`` of the zoo model (same interface) to run instead.
        models_dir: Offline folder of verified model copies for ``zoo.pull``.

    Raises:
        ConfigError: Neither a zoo name nor an existing file. ModelFetchError: pull failed.
    """
    from edgeopt import zoo

    if model in zoo.names():
        entry = zoo.get(model)
        path = Path(variant) if variant is not None else zoo.pull(model, models_dir)
        return path, entry.interface
    path = Path(variant) if variant is not None else Path(model)
    if not path.is_file():
        raise ConfigError(
            f"model {model!r} is neither a zoo model ({', '.join(zoo.names())}) nor an "
            "existing .onnx file"
        )
    return path, None


def ort_layout_file(path: Path) -> Path:
    """The ``ort_layout`` rewrite of a pulled zoo model, made once and cached beside it.

    The rewrites are exact (outputs within 1e-4 of the original, same masks) and make ONNX
    Runtime about 1.35x faster on the MediaPipe models; the cache key covers the model's
    sha256 and the pass's own source, so a changed pass rewrites again. The entry's sha256 is
    recorded when written and checked before each use: a damaged one is made again.
    """
    import hashlib

    from edgeopt import rewrites
    from edgeopt._fs import atomic_path, file_sha256, read_verified, record_sha256
    from edgeopt.artifact import load_onnx
    from edgeopt.passes import ort_layout
    from edgeopt.passes.base import PassContext

    code = [Path(ort_layout.__file__), *sorted(Path(rewrites.__file__).parent.glob("*.py"))]
    key = hashlib.sha256(
        (file_sha256(path) + "".join(file_sha256(f) for f in code)).encode()
    ).hexdigest()[:16]
    target = path.with_name(f"{path.stem}.ort_layout-{key}.onnx")
    if read_verified(target):  # a damaged or tampered entry is deleted and made again
        return target
    import tempfile

    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        result = ort_layout.OrtLayoutPass().apply(load_onnx(path), PassContext(workdir=Path(tmp)))
        if not result.modified:
            return path
        with atomic_path(target) as out:
            out.write_bytes(result.model.path.read_bytes())
        record_sha256(target)
    return target


def load_segmenter(
    model: str = "mediapipe-selfie",
    *,
    backend: str = "onnxruntime",
    backend_options: BackendOptions | Mapping[str, Any] | None = None,
    variant: str | os.PathLike[str] | None = None,
    options: SegmenterOptions | None = None,
    models_dir: Path | None = None,
    optimize: bool = False,
    interface: Mapping[str, Any] | None = None,
) -> Segmenter:
    """Compile a model with ``edgeopt.compile`` and wrap it in a `Segmenter`.

    Args:
        model: A zoo name, an ``.onnx`` path, or an ``edgeopt compile`` artifact folder (run
            with its own backend's runtime; ``backend`` and ``optimize`` do not apply).
        backend: Registered backend name.
        backend_options: The backend's options (e.g. ``{"threads": 2}``); for ONNX Runtime,
            threads spin during a run only unless asked otherwise.
        variant: An optimized ``.onnx`` of the zoo model to run instead of the pulled one.
        options: Mask post-processing and frame skipping.
        models_dir: Offline folder of verified model copies.
        optimize: On ONNX Runtime, run a zoo model through the exact ``ort_layout`` rewrites
            (see `ort_layout_file`); ignored for other backends, ``.onnx`` paths and variants.
        interface: Interface fields (flags or a model card: mean, std, channel_order,
            activation, person_channel, ...) on top of the zoo entry's or the graph's.

    Raises:
        EdgeoptError: The model cannot be found, pulled or compiled.
    """
    from edgeopt._api import compile as compile_model
    from edgeopt.bench.environment import usable_cores

    if is_saved(model):  # an `edgeopt compile` folder: its runtime only, its interface
        compiled_model = load_saved(model)
        fields = {**(read_saved(model).get("interface") or {}), **dict(interface or {})}
        iface = ModelInterface.model_validate(fields) if fields else None
        return Segmenter(compiled_model, iface, options)
    path, iface = resolve_model(model, variant, models_dir)
    is_zoo = iface is not None
    if iface is None or interface:
        zoo_fields = iface.model_dump() if iface is not None else {}
        iface = infer_interface(load_onnx(path), {**zoo_fields, **dict(interface or {})})
        if iface is None:
            raise ConfigError(
                f"{path}: the first input is not an image [1,H,W,3] or [1,3,H,W]: not a "
                "segmentation model edgeopt can feed frames to"
            )
    if optimize and backend in ("onnxruntime", "ort") and variant is None and is_zoo:
        path = ort_layout_file(path)
    fallback, needs = None, 2
    if backend in ("onnxruntime", "ort") and not isinstance(backend_options, BackendOptions):
        # Between two inferences this pipeline does its own CPU work (resize, blend, encode);
        # ORT's idle threads spinning for the next run steal those cores (on 2 cores the
        # composite measured 4-6x slower), and without spinning a run wakes its threads for
        # every operator (MediaPipe selfie: 2.3 ms on 2 threads, slower than 2.0 on one). So
        # they spin during a run and stop when it returns: 1.6 ms, the same CPU per frame.
        given = dict(backend_options or {})
        backend_options = {"spinning": True, "spin_stop": True, **given}
        # ORT's default: a thread per physical core (hyper-threads share one).
        physical = psutil.cpu_count(logical=False) or usable_cores()
        needs = int(given.get("threads") or min(usable_cores(), physical))
        if "threads" not in given and needs > 1:
            # Spinning threads stall when another process holds one of their cores (5.8 ms
            # with one core of two taken): a one-thread copy runs while that lasts.
            fallback = compile_model(path, backend, {**backend_options, "threads": 1})
    compiled = compile_model(path, backend, backend_options)
    return Segmenter(compiled, iface, options, fallback, needs)
