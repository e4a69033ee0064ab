"""The demo behind ``make demo``: real-time background removal, measured and shown.

1. pulls the default model (``mediapipe-selfie``) through the zoo;
2. makes the sample clip from the public-domain portraits shipped by scikit-image and matplotlib;
3. builds every variant of `VARIANTS` it can (optimization passes, other backends) and skips
   the others with a one-line note;
4. measures them side by side (per-stage p50/p99 ms and fps at 640x480 and 1280x720, mask IoU
   against the fp32 model) and prints the table;
5. runs the best variant over the clip and writes the background-removed video, a contact
   sheet (input | mask | blurred | replaced) and the figures to ``demo-out/``.

To add a variant, add a `DemoVariant` to `VARIANTS`: passes (as in a recipe) and/or a backend.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeopt import zoo
from edgeopt._fs import atomic_path, atomic_write_text
from edgeopt.apps.background import Compositor, load_segmenter, parse_effect
from edgeopt.apps.background.app import RunConfig, remove_background
from edgeopt.apps.background.composite import blend
from edgeopt.apps.background.portrait_clip import sample_frames, write_sample
from edgeopt.apps.background.stagebench import (
    STAGE_COLUMNS,
    StageBenchSettings,
    StageReport,
    StageVariant,
    measure_stages,
    table_rows,
)
from edgeopt.cli._output import console, print_table
from edgeopt.errors import EdgeoptError
from edgeopt.registry import backend_names, get_backend, pass_names

ROOT = Path(__file__).resolve().parents[1]
OUT = Path("demo-out")
MODEL = "mediapipe-selfie"
SIZE = (480, 640)
MIN_IOU = 0.95
"""A variant whose masks agree less than this with the fp32 model is not chosen as the best."""


@dataclass(frozen=True)
class DemoVariant:
    """One way to run the model: optimization passes, then a backend.

    Attributes:
        name: Label in the table.
        passes: Recipe passes (``{"name": ..., "options": {...}}``); empty: the zoo model.
        backend: Backend that compiles and runs it.
        options: Backend options.
    """

    name: str
    passes: tuple[dict[str, Any], ...] = ()
    backend: str = "onnxruntime"
    options: dict[str, Any] = field(default_factory=dict)


_TVM_TUNE_S = float(os.environ.get("EDGEOPT_DEMO_TVM_TUNE_S", "0"))
VARIANTS: tuple[DemoVariant, ...] = (
    DemoVariant("ort-fp32"),  # the baseline: first, always
    DemoVariant("ort-simplified", passes=({"name": "simplify"},)),
    DemoVariant("ort-layout", passes=({"name": "ort_layout"},)),  # exact NCHWc-friendly rewrites
    DemoVariant(
        "ort-int8",
        passes=({"name": "simplify"}, {"name": "quantize", "options": {"mode": "static"}}),
    ),
    DemoVariant("litert-xnnpack", backend="litert"),  # the field's runtime, on the original
    DemoVariant("openvino", backend="openvino"),
    DemoVariant(
        "tvm-tuned" if _TVM_TUNE_S else "tvm-untuned",
        backend="tvm",
        options={"tune_seconds": _TVM_TUNE_S} if _TVM_TUNE_S else {},
    ),
)
"""The variants the demo tries, in table order; extend it here."""


def _note(text: str) -> None:
    console.print(f"demo: {text}", markup=False)


def models_dir() -> Path | None:
    """The offline folder of verified models: EDGEOPT_MODELS_DIR, else ../shared/models."""
    env = os.environ.get("EDGEOPT_MODELS_DIR")
    folder = Path(env) if env else ROOT.parent / "shared" / "models"
    return folder if folder.is_dir() else None


def build(variant: DemoVariant, model: Path, threads: int) -> StageVariant | None:
    """The variant ready to measure, or None (with a one-line note) when it cannot be built."""
    if variant.backend not in backend_names():
        _note(f"skipping {variant.name}: backend {variant.backend!r} is not registered")
        return None
    backend = get_backend(variant.backend)
    if not backend.is_available():
        _note(f"skipping {variant.name}: {variant.backend} unavailable ({backend.install_hint})")
        return None
    path: str | None = None
    if variant.passes:
        missing = [p["name"] for p in variant.passes if p["name"] not in pass_names()]
        if missing:
            _note(f"skipping {variant.name}: pass(es) {missing} not available")
            return None
        from edgeopt.pipeline import run_pipeline
        from edgeopt.recipe import parse_recipe

        try:
            recipe = parse_recipe({"passes": list(variant.passes)}, variant.name)
            report = run_pipeline(model, recipe, OUT / "variants" / variant.name)
        except EdgeoptError as e:
            _note(f"skipping {variant.name}: optimization failed: {e}")
            return None
        path = report.output
    options = {"threads": threads, **variant.options}
    return StageVariant(
        name=variant.name, model=MODEL, variant=path, backend=variant.backend, options=options
    )


def best(report: StageReport) -> str:
    """The variant with the lowest 720p frame p50 among those faithful to the fp32 model.

    The median, not the p99: on a shared 2-core machine the tail mostly measures other jobs,
    and the table shows both.
    """
    big = max(r.size for r in report.results)
    faithful = [r for r in report.results if r.size == big and (r.iou is None or r.iou >= MIN_IOU)]
    return min(faithful, key=lambda r: r.p("frame", 50)).variant


def _halo_blur(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The blur as it was before: the whole frame blurred, then blended (the person bleeds)."""
    return blend(frame, cv2.GaussianBlur(frame, (0, 0), 12.0), mask)


def _outline_crop(image: np.ndarray, mask: np.ndarray, side: int = 96) -> np.ndarray:
    """An enlarged crop of ``image`` on the person's outline: the right side of the head."""
    edge = cv2.Canny(mask, 64, 192)
    top = edge[: edge.shape[0] * 2 // 5]
    ys, xs = np.nonzero(top)
    if ys.size == 0:
        y, x = image.shape[0] // 2, image.shape[1] // 2
    else:
        i = int(np.argmax(xs))  # the right-most outline point in the top part
        y, x = int(ys[i]), int(xs[i])
    y0 = min(max(y - side // 2, 0), image.shape[0] - side)
    x0 = min(max(x - side // 2, 0), image.shape[1] - side)
    crop = image[y0 : y0 + side, x0 : x0 + side]
    return cv2.resize(crop, None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST)


def contact_sheet(variant: StageVariant, background: Path, rows: int = 4) -> Path:
    """Write ``contact-sheet.png``: input | mask | blurred (halo-free) | blurred the old way
    (whole frame, halo) | replaced, for frames of the clip; a last row shows the person's
    outline enlarged 3x in both blurs."""
    seg = load_segmenter(
        MODEL,
        backend=variant.backend,
        backend_options=variant.options or None,
        variant=variant.variant,
        models_dir=models_dir(),
    )
    blur = Compositor(parse_effect("blur"))
    replace = Compositor(parse_effect(f"replace:{background}"))
    frames = list(sample_frames(SIZE, 120))
    picks = [frames[i] for i in np.linspace(5, len(frames) - 5, rows).astype(int)]
    tiles = []
    crops: list[np.ndarray] = []
    for frame in picks:
        seg.reset()
        mask = seg.segment(frame).copy()
        shown = cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR)
        new, old = blur(frame, mask), _halo_blur(frame, mask)
        tiles.append(np.hstack([frame, shown, new, old, replace(frame, mask)]))
        crops = [_outline_crop(new, mask), _outline_crop(old, mask)]  # the last frame's
    sheet = cv2.resize(np.vstack(tiles), None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    labels = ("input", "mask", "blurred (no halo)", "blurred (old: halo)", "replaced")
    for i, label in enumerate(labels):
        x = i * SIZE[1] // 2 + 8
        cv2.putText(sheet, label, (x, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2)
    zoom = np.hstack(crops)
    for i, label in enumerate(("outline x3: no halo", "outline x3: old blur")):
        cv2.putText(zoom, label, (i * zoom.shape[1] // 2 + 8, 22), 0, 0.6, (255, 255, 255), 2)
    row = np.zeros((zoom.shape[0], sheet.shape[1], 3), np.uint8)
    row[:, : min(zoom.shape[1], sheet.shape[1])] = zoom[:, : sheet.shape[1]]
    sheet = np.vstack([sheet, row])
    target = OUT / "contact-sheet.png"
    with atomic_path(target) as tmp:
        if not cv2.imwrite(str(tmp), sheet):
            raise OSError(f"cannot write {target}")
    return target


def main() -> int:
    """Run the demo; returns the exit code."""
    start = time.perf_counter()
    OUT.mkdir(exist_ok=True)
    threads = min(2, len(os.sched_getaffinity(0)))
    model = zoo.pull(MODEL, models_dir())
    _note(f"model {MODEL}: {model}")
    clip = write_sample(OUT / "sample.mp4", SIZE, seconds=4.0)
    _note(f"sample clip: {clip} (astronaut + Grace Hopper, moving camera)")

    variants = [v for v in (build(d, model, threads) for d in VARIANTS) if v is not None]
    folder = models_dir()
    settings = StageBenchSettings(frames=150, models_dir=str(folder) if folder else None)
    _note(f"measuring {len(variants)} variant(s) at 640x480 and 1280x720 ({threads} threads)")
    report = measure_stages(variants, settings)
    title = "background removal: ms per frame per stage, p50 / p99 (blur effect)"
    print_table(title, STAGE_COLUMNS, table_rows(report))
    _note(
        f"{report.cores} cores, load average {report.loadavg[0]:.1f} -> {report.loadavg[1]:.1f}; "
        "frame = pre + infer + post + composite; mask IoU vs the fp32 model on ONNX Runtime"
    )
    atomic_write_text(OUT / "bgremove-stages.json", json.dumps(report.to_dict(), indent=1))

    chosen = next(v for v in variants if v.name == best(report))
    _note(f"best variant: {chosen.name}")
    summary = remove_background(
        RunConfig(
            input=str(clip),
            output=str(OUT / "background-removed.mp4"),
            model=MODEL,
            backend=chosen.backend,
            variant=chosen.variant,
            threads=threads,
            effect="blur",
            models_dir=str(folder) if folder else None,
        )
    )
    _note(
        f"wrote {OUT / 'background-removed.mp4'}: {summary.frames_in} frames in, "
        f"{summary.frames_out} out, {summary.fps:.0f} fps including decode and encode"
    )
    import skimage.data

    background = OUT / "background.png"
    with atomic_path(background) as tmp:
        rocket = np.asarray(skimage.data.rocket())  # type: ignore[no-untyped-call]
        cv2.imwrite(str(tmp), cv2.cvtColor(rocket, cv2.COLOR_RGB2BGR))
    sheet = contact_sheet(chosen, background)
    _note(f"wrote {sheet}; done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EdgeoptError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        sys.exit(1)
