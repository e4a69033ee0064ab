"""Per-stage benchmark of the background-removal pipeline: ms per stage, fps, and mask fidelity.

What is measured is what runs: each variant's worker builds the same `BackgroundRemover`
(`load_segmenter` -> ``edgeopt.compile``) that the CLI, the virtual camera and the GStreamer
element use, and times ``process`` on frames of the sample clip at each frame size. As in
`edgeopt.bench.harness`, every variant gets its own ``spawn``-ed worker process (runtimes in one
process disturb each other) and the parent hands out blocks of frames in turn, the start
rotating each round, so a busy moment on a shared machine hits every variant alike.

Fidelity: each worker also returns its model's raw probability maps on the sample frames; the
parent compares them with the fp32 zoo model on ONNX Runtime (mask IoU at 0.5), so an
optimized variant shows its price beside its speed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.bench.environment import usable_cores
from edgeopt.bench.worker import Worker
from edgeopt.errors import ConfigError

__all__ = [
    "STAGE_COLUMNS",
    "StageBenchSettings",
    "StageReport",
    "StageResult",
    "StageVariant",
    "measure_stages",
    "table_rows",
]

STAGE_COLUMNS = (
    "variant",
    "backend",
    "frame",
    "pre p50/p99",
    "infer p50/p99",
    "post p50/p99",
    "composite p50/p99",
    "frame p50/p99",
    "fps",
    "mask IoU",
)
_STAGES = ("pre", "infer", "post", "composite", "frame")


class StageVariant(BaseModel):
    """One pipeline configuration to measure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Label in the table; unique in a run.")
    model: str = Field(default="mediapipe-selfie", description="Zoo name (or .onnx path).")
    variant: str | None = Field(
        default=None, description="Optimized .onnx of the zoo model to run instead of it."
    )
    backend: str = Field(default="onnxruntime", description="Registered backend name.")
    options: dict[str, Any] = Field(default_factory=dict, description="Backend options.")


class StageBenchSettings(BaseModel):
    """How much to measure and on what."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sizes: tuple[tuple[int, int], ...] = Field(
        default=((480, 640), (720, 1280)), description="Frame sizes (height, width)."
    )
    frames: int = Field(default=200, ge=1, description="Timed frames per variant and size.")
    warmup: int = Field(default=10, ge=0, description="Untimed frames per variant and size.")
    block: int = Field(default=20, ge=1, description="Frames per variant per round.")
    effect: str = Field(default="blur", description="Compositing effect (parse_effect spec).")
    clip_frames: int = Field(default=60, ge=2, description="Distinct sample frames per size.")
    fidelity_frames: int = Field(default=30, ge=1, description="Frames compared for IoU.")
    models_dir: str | None = Field(default=None, description="Offline verified models folder.")
    timeout_s: float = Field(default=600.0, gt=0, description="Longest wait for one worker step.")


@dataclass(frozen=True)
class StageResult:
    """One variant at one frame size.

    Attributes:
        variant: The variant's name.
        backend: Its backend.
        size: (height, width) of the frames.
        samples: Milliseconds per frame, per stage (pre, infer, post, composite, frame).
        iou: Mean mask IoU against the fp32 reference (None when not measured).
        iou_min: The worst frame's IoU.
    """

    variant: str
    backend: str
    size: tuple[int, int]
    samples: dict[str, list[float]]
    iou: float | None = None
    iou_min: float | None = None

    def p(self, stage: str, q: float) -> float:
        """Percentile ``q`` (0-100) of ``stage`` in ms."""
        values = self.samples.get(stage) or [float("nan")]
        return float(np.percentile(np.asarray(values), q))

    @property
    def fps(self) -> float:
        """Frames per second end to end (pre + infer + post + composite), from the mean."""
        mean = float(np.mean(self.samples["frame"]))
        return 1000.0 / mean if mean > 0 else float("inf")


@dataclass(frozen=True)
class StageReport:
    """Every variant at every size, with the machine's load noted.

    Attributes:
        results: One result per (variant, size), in variant order then size order.
        loadavg: The 1-minute load average before and after measuring.
        cores: Usable CPU cores.
    """

    results: tuple[StageResult, ...]
    loadavg: tuple[float, float] = (0.0, 0.0)
    cores: int = field(default_factory=usable_cores)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, percentiles included."""
        return {
            "schema": "edgeopt.bgremove-stages/1",
            "loadavg": list(self.loadavg),
            "cores": self.cores,
            "results": [
                {
                    "variant": r.variant,
                    "backend": r.backend,
                    "size": list(r.size),
                    "iou": r.iou,
                    "iou_min": r.iou_min,
                    "fps": r.fps,
                    "p50_ms": {s: r.p(s, 50) for s in _STAGES},
                    "p99_ms": {s: r.p(s, 99) for s in _STAGES},
                    "samples_ms": r.samples,
                }
                for r in self.results
            ],
        }


def table_rows(report: StageReport) -> list[tuple[str, ...]]:
    """Rows of formatted cells in `STAGE_COLUMNS` order."""
    rows = []
    for r in report.results:
        cells = [r.variant, r.backend, f"{r.size[1]}x{r.size[0]}"]
        cells += [f"{r.p(s, 50):.2f} / {r.p(s, 99):.2f}" for s in _STAGES]
        cells.append(f"{r.fps:.0f}")
        cells.append("-" if r.iou is None else f"{r.iou:.4f} (min {r.iou_min:.4f})")
        rows.append(tuple(cells))
    return rows


def _worker(conn: Connection, variant: dict[str, Any], settings: dict[str, Any]) -> None:
    """Worker process: build the remover once, then time blocks of frames on request."""
    try:
        from edgeopt.apps.background.composite import Compositor, parse_effect
        from edgeopt.apps.background.portrait_clip import sample_frames
        from edgeopt.apps.background.remover import BackgroundRemover
        from edgeopt.apps.background.segmenter import load_segmenter

        models_dir = Path(settings["models_dir"]) if settings["models_dir"] else None
        segmenter = load_segmenter(
            variant["model"],
            backend=variant["backend"],
            backend_options=variant["options"] or None,
            variant=variant["variant"],
            models_dir=models_dir,
        )
        remover = BackgroundRemover(segmenter, Compositor(parse_effect(settings["effect"])))
        clips = [list(sample_frames(tuple(s), settings["clip_frames"])) for s in settings["sizes"]]
        outs = [np.empty_like(c[0]) for c in clips]
        positions = [0] * len(clips)
        for i, clip in enumerate(clips):
            for k in range(settings["warmup"]):
                remover.process(clip[k % len(clip)], "BGR", outs[i])
        conn.send(("ready",))
        while True:
            msg = conn.recv()
            if msg[0] == "block":
                i, n = msg[1], msg[2]
                remover.times.clear()
                for _ in range(n):
                    frame = clips[i][positions[i] % len(clips[i])]
                    positions[i] += 1
                    remover.process(frame, "BGR", outs[i])
                conn.send(("samples", {s: remover.times.samples(s) for s in _STAGES}))
            elif msg[0] == "probs":
                probs = [segmenter.infer(segmenter.preprocess(f)).copy() for f in msg[1]]
                conn.send(("probs", probs))
            else:
                conn.send(("done",))
                return
    except BaseException as e:
        conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))


def _references(
    variants: Sequence[StageVariant], frames: list[np.ndarray], models_dir: Path | None
) -> dict[str, list[np.ndarray]]:
    """fp32 probability maps of each zoo model used, on ONNX Runtime, in this process."""
    from edgeopt.apps.background.segmenter import load_segmenter

    refs: dict[str, list[np.ndarray]] = {}
    for v in variants:
        if v.model in refs:
            continue
        seg = load_segmenter(v.model, backend_options={"threads": 1}, models_dir=models_dir)
        refs[v.model] = [seg.infer(seg.preprocess(f)).copy() for f in frames]
    return refs


def measure_stages(
    variants: Sequence[StageVariant],
    settings: StageBenchSettings | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> StageReport:
    """Measure each variant's per-stage times at each frame size, interleaved, and its IoU.

    Args:
        variants: What to measure.
        settings: Sizes, frame counts, effect.
        progress: Called with (blocks done, blocks in all).

    Raises:
        ConfigError: No variants, or names not unique. BenchmarkError: a worker failed.
    """
    from edgeopt.apps.background.portrait_clip import sample_frames
    from edgeopt.bench.fidelity import mask_iou

    settings = settings or StageBenchSettings()
    names = [v.name for v in variants]
    if not variants or len(set(names)) != len(names):
        raise ConfigError(f"give one or more variants with unique names, got {names}")
    models_dir = Path(settings.models_dir) if settings.models_dir else None
    fid_frames = list(sample_frames(settings.sizes[0], settings.fidelity_frames))
    refs = _references(variants, fid_frames, models_dir)
    load0 = os.getloadavg()[0]
    ctx = mp.get_context("spawn")
    workers = [
        Worker(ctx, v.name, _worker, (v.model_dump(), settings.model_dump()), settings.timeout_s)
        for v in variants
    ]
    samples: dict[tuple[str, int], dict[str, list[float]]] = {
        (v.name, i): {s: [] for s in _STAGES} for v in variants for i in range(len(settings.sizes))
    }
    try:
        for w in workers:
            w.recv()
        rounds = -(-settings.frames // settings.block)
        total = rounds * len(settings.sizes)
        done = 0
        for r in range(rounds):
            n = min(settings.block, settings.frames - r * settings.block)
            for i in range(len(settings.sizes)):
                for k in range(len(workers)):
                    w = workers[(r + k) % len(workers)]
                    got = w.ask("block", i, n)[1]
                    for s in _STAGES:
                        samples[(w.name, i)][s].extend(got[s])
                done += 1
                if progress:
                    progress(done, total)
        ious = {}
        for w, v in zip(workers, variants, strict=True):
            probs = w.ask("probs", fid_frames)[1]
            per_frame = [mask_iou(a, b) for a, b in zip(refs[v.model], probs, strict=True)]
            ious[v.name] = (float(np.mean(per_frame)), float(np.min(per_frame)))
            w.ask("stop")
    finally:
        for w in workers:
            w.close()
    results = tuple(
        StageResult(
            variant=v.name,
            backend=v.backend,
            size=settings.sizes[i],
            samples=samples[(v.name, i)],
            iou=ious[v.name][0],
            iou_min=ious[v.name][1],
        )
        for v in variants
        for i in range(len(settings.sizes))
    )
    return StageReport(results=results, loadavg=(load0, os.getloadavg()[0]))
