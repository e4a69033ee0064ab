"""The ``edgeoptbgremove`` GStreamer element: background removal inside any GStreamer pipeline.

A `GstBase.BaseTransform` written in Python that works in place on raw RGB, RGBA, BGR or
BGRA frames: it maps each buffer read-write, views it as a numpy array (no copy) and runs the
same `BackgroundRemover` as the CLI and the benchmark on it. Properties: ``model`` (zoo name or
``.onnx`` path), ``backend``, ``effect`` (blur, replace, remove, mask, none), ``background``
(the file for replace, the key colour for remove, the sigma for blur) and ``threads``.

Two ways in:

- in-process, for the Python API: `register()` then ``Gst.parse_launch("... ! edgeoptbgremove
  ! ...")``; `launch()` runs such a pipeline to the end and raises on its errors.
- from ``gst-launch-1.0``: the plugin file ``gst_plugin/python/edgeoptbgremove.py`` is found
  through ``GST_PLUGIN_PATH`` by gst-python's plugin loader (Debian package
  ``gstreamer1.0-python3-plugin-loader``). The loader embeds the system Python, so it must
  also see this package and its dependencies: `plugin_env()` gives the variables::

      GST_PLUGIN_PATH=$(python -c 'from edgeopt.apps.background import gst; print(gst.PLUGIN_DIR)')
      PYTHONPATH=<the venv's site-packages> gst-launch-1.0 videotestsrc ! videoconvert ! \\
          video/x-raw,format=RGB ! edgeoptbgremove effect=blur ! videoconvert ! autovideosink

PyGObject from pip lacks GStreamer's overrides, without which buffers map read-only;
``scripts/link_gst_overrides.sh`` links Debian's into the venv. `register()` checks for them.
"""

from __future__ import annotations

import contextlib
import os
import site
import threading
from pathlib import Path
from typing import Any, ClassVar

import gi  # type: ignore[import-untyped]
from pydantic import ValidationError

gi.require_version("Gst", "1.0")
gi.require_version("GstBase", "1.0")
gi.require_version("GstVideo", "1.0")
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from gi.repository import GLib, GObject, Gst, GstBase, GstVideo  # type: ignore[import-untyped]  # noqa: E402

from edgeopt._fs import os_error_message  # noqa: E402
from edgeopt.apps.background.composite import Compositor, effect_from_args  # noqa: E402
from edgeopt.apps.background.errors import VideoError  # noqa: E402
from edgeopt.apps.background.remover import BackgroundRemover  # noqa: E402
from edgeopt.apps.background.segmenter import (  # noqa: E402
    MASK_OPTIONS,
    Order,
    SegmenterOptions,
    load_segmenter,
    option_help,
    option_range,
)
from edgeopt.errors import EdgeoptError  # noqa: E402
from edgeopt.interface import load_card  # noqa: E402

__all__ = [
    "ELEMENT",
    "PLUGIN_DIR",
    "EdgeoptBgRemove",
    "launch",
    "plugin_env",
    "preload",
    "register",
]

if not Gst.is_initialized():
    Gst.init(None)

ELEMENT = "edgeoptbgremove"
"""The element's factory name."""

PLUGIN_DIR = Path(__file__).resolve().parent / "gst_plugin"
"""The folder to put on GST_PLUGIN_PATH (gst-python looks in its ``python/`` sub-folder)."""

_FORMATS = ("RGB", "RGBA", "BGR", "BGRA")
_CAPS = Gst.Caps.from_string(
    f"video/x-raw,format={{{','.join(_FORMATS)}}},"
    "width=[1,2147483647],height=[1,2147483647],framerate=[0/1,2147483647/1]"
)
_RW = GObject.ParamFlags.READWRITE
MAX_THREADS = 256
# Numeric properties are declared with wide GObject ranges and checked by the element itself:
# GObject's own check only prints a GLib warning and keeps the old value (threads=-1 passed
# unnoticed). Out of range, the element posts an ERROR naming the property and its range.
_WIDE_INT = (-(2**31), 2**31 - 1)
_WIDE = (-1e12, 1e12)
RANGES: dict[str, tuple[float, float]] = {
    "threads": (0, MAX_THREADS),
    "budget-ms": (0.0, 10000.0),
}
"""Ranges of the element's own numeric properties; the mask options' are `SegmenterOptions`'s."""

PROPERTY_FIELDS = {prop: field for field, prop in MASK_OPTIONS.items()}
"""Element property -> `SegmenterOptions` field."""


def _mask_property(field: str) -> tuple[Any, ...]:
    """The GObject property of a `SegmenterOptions` field: its type, help with its range, and
    default (a threshold of None is 0). Wide GObject bounds: the options model checks."""
    info = SegmenterOptions.model_fields[field]
    name = MASK_OPTIONS[field]
    default = info.default if info.default is not None else 0.0
    if field == "refine":
        return (str, name, option_help(field), default, _RW)
    kind, bounds = (int, _WIDE_INT) if field == "every" else (float, _WIDE)
    return (kind, name, option_help(field), *bounds, default, _RW)


MASK_PROPERTIES = {prop: _mask_property(field) for field, prop in MASK_OPTIONS.items()}
"""The element's mask-option properties (PyGObject takes ``__gproperties__`` off the class,
so the defaults are read from here)."""


def _mask_options(props: dict[str, Any]) -> SegmenterOptions:
    """The options model from the element's properties (a threshold of 0 is unset)."""
    values = {field: props[prop] for prop, field in PROPERTY_FIELDS.items()}
    values["threshold"] = values["threshold"] or None
    return SegmenterOptions(**values)


def _message(e: BaseException) -> str:
    """One line for an error inside the element (it has no terminal: it posts ERROR)."""
    if isinstance(e, OSError):
        return os_error_message(e)
    if isinstance(e, MemoryError):
        return f"not enough memory for this model or frame size ({e}): use smaller frames"
    return str(e)


class EdgeoptBgRemove(GstBase.BaseTransform):  # type: ignore[misc]
    """GStreamer element: blur, replace or remove the background behind people, in place."""

    __gtype_name__ = "EdgeoptBgRemove"
    __gstmetadata__ = (
        "edgeopt background removal",
        "Filter/Effect/Video",
        "Blurs, replaces or removes the background behind people (person segmentation)",
        "edgeopt",
    )
    __gsttemplates__ = (
        Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, _CAPS),
        Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, _CAPS),
    )
    __gproperties__: ClassVar[dict[str, tuple[Any, ...]]] = {
        "model": (str, "model", "Zoo model name or .onnx path", "mediapipe-selfie", _RW),
        "card": (
            str,
            "card",
            "YAML model card: the model's interface (mean, std, channel_order, activation, "
            "person_channel, ...); empty: the zoo entry's or what the graph says",
            "",
            _RW,
        ),
        "backend": (str, "backend", "edgeopt backend that runs the model", "onnxruntime", _RW),
        "effect": (str, "effect", "blur, replace, remove, mask or none", "blur", _RW),
        "background": (
            str,
            "background",
            "File for replace, key colour for remove, sigma for blur",
            "",
            _RW,
        ),
        **MASK_PROPERTIES,
        "optimize": (
            bool,
            "optimize",
            "ONNX Runtime: run the zoo model's exact ort_layout rewrite, as bgremove does",
            True,
            _RW,
        ),
        "budget-ms": (
            float,
            "budget-ms",
            "Per-frame budget in ms (0..10000): the model runs less often above it; 0: none",
            *_WIDE,
            0.0,
            _RW,
        ),
        # The full int range, checked in do_set_property: GObject's own range check only
        # prints a GLib warning and keeps the old value, so threads=-1 would pass unnoticed.
        "threads": (
            int,
            "threads",
            f"Inference threads, 0..{MAX_THREADS} (0: every core, one while other processes "
            "hold a core)",
            *_WIDE_INT,
            0,
            _RW,
        ),
    }

    def __init__(self) -> None:
        super().__init__()
        self._props: dict[str, Any] = {
            "model": "mediapipe-selfie",
            "card": "",
            "backend": "onnxruntime",
            "effect": "blur",
            "background": "",
            "threads": 0,
            "budget-ms": 0.0,
            "optimize": True,
            **{prop: spec[-2] for prop, spec in MASK_PROPERTIES.items()},
        }
        self._remover: BackgroundRemover | None = None
        self._invalid = ""
        self._stale = False
        self._order: Order = "RGB"
        self._shape = (0, 0, 3)
        self._stride = 0
        self.set_in_place(True)
        self.set_passthrough(False)

    def do_get_property(self, prop: GObject.ParamSpec) -> Any:
        """GObject property getter."""
        return self._props[prop.name]

    def do_set_property(self, prop: GObject.ParamSpec, value: Any) -> None:
        """GObject property setter; works while playing too.

        A new effect or background swaps the compositor at once; a new model, backend or
        thread count recompiles before the next frame.
        """
        bounds = RANGES.get(prop.name)
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            lo, hi = (f"{b:g}" for b in bounds)
            self._invalid = f"{ELEMENT}: {prop.name}={value:g} is out of range: give {lo}..{hi}"
            self._error(self._invalid)
            return
        if prop.name in PROPERTY_FIELDS:
            try:
                _mask_options({**self._props, prop.name: value})
            except ValidationError:
                field = PROPERTY_FIELDS[prop.name]
                shown = f"{value!r}" if isinstance(value, str) else f"{value:g}"
                self._invalid = (
                    f"{ELEMENT}: {prop.name}={shown} is out of range: give {option_range(field)}"
                )
                self._error(self._invalid)
                return
        self._props[prop.name] = value
        remover = self._remover
        if remover is None:
            return
        if prop.name in ("effect", "background"):
            try:
                remover.compositor = self._compositor()
            except EdgeoptError as e:
                self._error(f"{ELEMENT}: {e}")
        else:
            self._stale = True

    def _compositor(self) -> Compositor:
        p = self._props
        return Compositor(effect_from_args(p["effect"], p["background"] or None))

    def _build(self) -> BackgroundRemover:
        p = self._props
        options = {"threads": p["threads"]} if p["threads"] else None
        card = load_card(p["card"]) if p["card"] else None
        segmenter = load_segmenter(
            p["model"],
            backend=p["backend"],
            backend_options=options,
            interface=card,
            options=_mask_options(p),
            optimize=p["optimize"],
        )
        budget = p["budget-ms"] or None
        return BackgroundRemover(segmenter, self._compositor(), budget)

    def _error(self, text: str) -> None:
        err = GLib.Error.new_literal(Gst.StreamError.quark(), text, Gst.StreamError.FAILED)
        self.post_message(Gst.Message.new_error(self, err, text))

    def do_start(self) -> bool:
        """Compile the model (once per start, so a bad model fails the pipeline early)."""
        if self._invalid:
            self._error(self._invalid)
            return False
        if self._remover is None or self._stale:
            try:
                self._remover = self._build()
            except (EdgeoptError, OSError, MemoryError, cv2.error) as e:
                self._error(f"{ELEMENT}: {_message(e)}")
                return False
            self._stale = False
        self._remover.reset()
        return True

    def do_set_caps(self, incaps: Gst.Caps, outcaps: Gst.Caps) -> bool:
        """Read width, height, format and row stride of the negotiated frames."""
        info = GstVideo.VideoInfo.new_from_caps(incaps)
        fmt = info.finfo.name
        if fmt not in _FORMATS:
            return False
        self._order = fmt
        self._shape = (info.height, info.width, len(fmt))
        self._stride = info.stride[0]
        return True

    def do_transform_ip(self, buf: Gst.Buffer) -> Gst.FlowReturn:
        """Composite one frame in place."""
        if self._stale and not self.do_start():
            return Gst.FlowReturn.ERROR
        remover = self._remover
        if remover is None:
            return Gst.FlowReturn.NOT_NEGOTIATED
        ok, info = buf.map(Gst.MapFlags.READ | Gst.MapFlags.WRITE)
        if not ok:
            self._error(f"{ELEMENT}: cannot map a buffer for writing")
            return Gst.FlowReturn.ERROR
        try:
            h, w, c = self._shape
            if self._stride == w * c:
                frame = np.ndarray((h, w, c), np.uint8, info.data)
                remover.process(frame, self._order, frame)
            else:  # rows padded to 4 bytes (RGB/BGR of odd widths): work on a packed copy
                padded = np.ndarray((h, self._stride), np.uint8, info.data)
                view = padded[:, : w * c].reshape(h, w, c)
                frame = np.ascontiguousarray(view)
                remover.process(frame, self._order, frame)
                view[...] = frame
        except (EdgeoptError, ValueError, TypeError, OSError, MemoryError, cv2.error) as e:
            self._error(f"{ELEMENT}: {_message(e)}")
            return Gst.FlowReturn.ERROR
        finally:
            buf.unmap(info)
        return Gst.FlowReturn.OK


def preload(backend: str = "onnxruntime") -> None:
    """Import what starting the element imports (zoo, converter, backend), now.

    Under ``gst-launch-1.0`` the element's Python runs inside gst-python's embedded
    interpreter; a first import of extension modules from inside a state change crashed it
    (SIGSEGV in the import machinery, GStreamer 1.22 / gst-python 1.22), while the same
    imports at plugin load time are fine. The plugin file calls this when it is loaded.
    """
    import importlib

    from edgeopt import zoo
    from edgeopt.registry import BACKENDS

    importlib.import_module("edgeopt._api")
    importlib.import_module("edgeopt.frontends.tflite")
    zoo.names()
    module = BACKENDS.get(backend, "").partition(":")[0]
    if module:
        importlib.import_module(module)
        with contextlib.suppress(ImportError):  # an absent backend fails later, with its hint
            importlib.import_module(backend)


_registered = threading.Lock()


def _check_overrides() -> None:
    probe = Gst.Buffer.new_allocate(None, 1, None)
    ok, info = probe.map(Gst.MapFlags.WRITE)
    try:
        writable = ok and isinstance(info.data, memoryview) and not info.data.readonly
    finally:
        if ok:
            probe.unmap(info)
    if not writable:
        raise VideoError(
            "GStreamer buffers map read-only in this Python: PyGObject lacks GStreamer's "
            "overrides; run scripts/link_gst_overrides.sh (needs apt package python3-gst-1.0)"
        )


def register() -> None:
    """Register ``edgeoptbgremove`` in this process (idempotent).

    Raises:
        VideoError: GStreamer's Python overrides are missing (buffers would be read-only).
    """
    with _registered:
        if Gst.ElementFactory.find(ELEMENT) is not None:
            return
        _check_overrides()
        Gst.Element.register(None, ELEMENT, Gst.Rank.NONE, EdgeoptBgRemove)


def launch(description: str, timeout_s: float = 600.0) -> None:
    """Run a pipeline (``gst-launch-1.0`` syntax) in this process until end of stream.

    Args:
        description: The pipeline, e.g. ``"videotestsrc num-buffers=30 ! ... ! fakesink"``.
        timeout_s: Longest wait for the end of the stream.

    Raises:
        VideoError: The pipeline does not parse, fails, or does not finish in time.
    """
    register()
    try:
        pipeline = Gst.parse_launch(description)
    except GLib.Error as e:
        raise VideoError(f"GStreamer pipeline does not parse: {e.message}") from e
    bus = pipeline.get_bus()
    pipeline.set_state(Gst.State.PLAYING)
    try:
        msg = bus.timed_pop_filtered(
            int(timeout_s * Gst.SECOND), Gst.MessageType.EOS | Gst.MessageType.ERROR
        )
        if msg is None:
            raise VideoError(f"GStreamer pipeline did not finish in {timeout_s:.0f} s")
        if msg.type == Gst.MessageType.ERROR:
            err, _debug = msg.parse_error()
            source = msg.src.get_name() if msg.src is not None else "?"
            raise VideoError(f"GStreamer pipeline failed in {source}: {err.message}")
    finally:
        pipeline.set_state(Gst.State.NULL)


def plugin_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for running ``gst-launch-1.0`` with this element from this Python's packages.

    gst-python's loader embeds the system Python, so the element's dependencies (this
    package, numpy, OpenCV, the backend) come from this interpreter's site-packages through
    PYTHONPATH. ``GST_REGISTRY_FORK=no`` scans plugins in-process with the same environment.

    Args:
        base: The environment to extend (default: ``os.environ``).
    """
    env = dict(os.environ if base is None else base)
    src = str(Path(__file__).resolve().parents[3])
    paths = [src, *site.getsitepackages()]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    plugins = [str(PLUGIN_DIR), *([env["GST_PLUGIN_PATH"]] if env.get("GST_PLUGIN_PATH") else [])]
    env["GST_PLUGIN_PATH"] = os.pathsep.join(plugins)
    env.setdefault("GST_REGISTRY_FORK", "no")
    return env
