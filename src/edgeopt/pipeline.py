"""The optimization pipeline: run a recipe's passes in order and report each one's price.

Each pass writes its model into ``OUT/steps/NN-name/``; after each pass that changed the model
the pipeline measures fidelity against the original fp32 model on a held-out evaluation set
(real images through the model's pre-processing) and the file size. A pass that does not apply
returns a reason; the pipeline records it and goes on with the model it had. At the end it
writes ``OUT/model.onnx`` (the last model) and ``OUT/report.json`` / ``OUT/report.md``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt._fs import atomic_path, atomic_write_text, remove_stale
from edgeopt.artifact import ModelArtifact, load_onnx
from edgeopt.bench.fidelity import compare_outputs, evaluation_feeds, preprocessing_for, run_outputs
from edgeopt.errors import ConfigError
from edgeopt.passes.base import PassContext
from edgeopt.recipe import DataSettings, Recipe
from edgeopt.registry import get_pass

__all__ = ["PipelineReport", "StepReport", "data_feeds", "run_pipeline"]

log = logging.getLogger(__name__)

SCHEMA = "edgeopt.optimize/1"
StepProgress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class StepReport:
    """What one pass did.

    Attributes:
        name: The pass.
        applied: Whether it changed the model.
        skipped: Why it did not apply (None when it ran).
        seconds: Time the pass took.
        size_bytes: Model size after the pass.
        fidelity: Fidelity against the original model after the pass (None if unchanged).
        model: The model file after the pass.
        details: The pass's own report.
    """

    name: str
    applied: bool
    skipped: str | None
    seconds: float
    size_bytes: int
    fidelity: dict[str, float | int] | None
    model: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PipelineReport:
    """The whole run: input, output, and each step.

    Attributes:
        source: The input model.
        output: The optimized model written.
        size_before: Input model size in bytes.
        size_after: Output model size in bytes.
        data: The data settings used.
        steps: One report per pass, in order.
        fidelity: Final fidelity against the input model (None when nothing changed).
    """

    source: str
    output: str
    size_before: int
    size_after: int
    data: dict[str, Any]
    steps: tuple[StepReport, ...]
    fidelity: dict[str, float | int] | None

    def to_json(self) -> str:
        """The report as JSON."""
        return json.dumps({"schema": SCHEMA, **asdict(self)}, indent=2, default=_jsonable)

    def to_markdown(self) -> str:
        """The report as a Markdown table plus each pass's notes."""
        lines = [
            f"# Optimization of `{Path(self.source).name}`",
            "",
            f"Output: `{self.output}` — {self.size_before / 1024:.1f} KiB -> "
            f"{self.size_after / 1024:.1f} KiB. Fidelity vs the input model on "
            f"{self.data.get('evaluation_count')} held-out inputs ({self.data.get('source')}).",
            "",
            "| # | pass | status | size KiB | IoU | IoU min | cosine | max abs | time s |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for i, s in enumerate(self.steps, 1):
            f = s.fidelity or {}
            status = (
                "applied" if s.applied else f"skipped: {s.skipped}" if s.skipped else "no change"
            )
            cells = [_fmt(f.get(k)) for k in ("iou", "iou_min", "cosine", "max_abs")]
            lines.append(
                f"| {i} | {s.name} | {status} | {s.size_bytes / 1024:.1f} | "
                + " | ".join(cells)
                + f" | {s.seconds:.2f} |"
            )
        for i, s in enumerate(self.steps, 1):
            if s.details:
                lines += ["", f"## {i}. {s.name}", "", "```json", _short_json(s.details), "```"]
        return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    return str(v)


def _short_json(details: Mapping[str, Any]) -> str:
    text = json.dumps(details, indent=2, default=_jsonable)
    return text if len(text) < 6000 else text[:6000] + "\n... (see report.json)"


def data_feeds(
    model: ModelArtifact, data: DataSettings, count: int, seed: int
) -> tuple[dict[str, np.ndarray], ...]:
    """Inputs for calibration or evaluation as the data settings say.

    ``auto`` means the built-in portraits for models that take RGB images, random inputs
    otherwise.
    """
    source: str | None = data.source
    if source == "auto":
        try:
            preprocessing_for(model)
            source = "builtin"
        except ConfigError:
            log.info("%s does not take RGB images: using random inputs", model.path)
            source = "random"
    return evaluation_feeds(model, source, count, seed)


def run_pipeline(
    model: ModelArtifact | str | os.PathLike[str],
    recipe: Recipe,
    out_dir: str | os.PathLike[str],
    progress: StepProgress | None = None,
) -> PipelineReport:
    """Run ``recipe`` on ``model``, writing the optimized model and its report into ``out_dir``.

    Args:
        model: The fp32 model (the fidelity reference).
        recipe: The passes and data settings.
        out_dir: Output folder (created): model.onnx, report.json, report.md, steps/.
        progress: Called with (step index, step count, pass name) before each pass.

    Raises:
        ModelLoadError: Bad input model. ConfigError: bad options or data.
        BackendError: A pass or a backend failed.
    """
    source = model if isinstance(model, ModelArtifact) else load_onnx(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    calibration = data_feeds(source, recipe.data, recipe.data.calibration_count, recipe.data.seed)
    evaluation = data_feeds(source, recipe.data, recipe.data.evaluation_count, recipe.data.seed + 1)
    remove_stale(out, _WORK_PREFIX)  # step folders of a killed run
    work = Path(tempfile.mkdtemp(prefix=f"{_WORK_PREFIX}{os.getpid()}-", dir=out))
    try:
        return _run_steps(source, recipe, out, work, calibration, evaluation, progress)
    finally:  # an error, Ctrl-C or SIGTERM leaves no half-made step folder behind
        shutil.rmtree(work, ignore_errors=True)


_WORK_PREFIX = ".steps-edgeopt-"


def _run_steps(
    source: ModelArtifact,
    recipe: Recipe,
    out: Path,
    work: Path,
    calibration: tuple[Mapping[str, np.ndarray], ...],
    evaluation: Sequence[Mapping[str, np.ndarray]],
    progress: StepProgress | None,
) -> PipelineReport:
    """The passes, in ``work``; its steps/ folder replaces ``out/steps`` when all succeeded."""
    reference = run_outputs(source, evaluation, recipe.backend)
    current = source
    steps: list[StepReport] = []
    for i, step in enumerate(recipe.passes, 1):
        if progress:
            progress(i, len(recipe.passes), step.name)
        impl = get_pass(step.name)
        ctx = PassContext(
            workdir=work / "steps" / f"{i:02d}-{step.name}",
            calibration=calibration if "calibration" in tuple(impl.requires) else (),
            options=step.options,
        )
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        result = impl.apply(current, ctx)
        seconds = time.perf_counter() - t0
        fidelity = None
        if result.skipped is not None:
            log.warning("pass %s skipped: %s", step.name, result.skipped)
        elif result.modified:
            current = result.model
            metrics = compare_outputs(reference, run_outputs(current, evaluation, recipe.backend))
            fidelity = metrics.to_dict()
        steps.append(
            StepReport(
                name=step.name,
                applied=result.modified and result.skipped is None,
                skipped=result.skipped,
                seconds=seconds,
                size_bytes=current.size_bytes,
                fidelity=fidelity,
                model=str(current.path).replace(str(work), str(out), 1),
                details=dict(result.report),
            )
        )
    final = out / "model.onnx"
    with atomic_path(final) as tmp:
        shutil.copyfile(current.path, tmp)
    if (work / "steps").is_dir():
        shutil.rmtree(out / "steps", ignore_errors=True)
        (work / "steps").replace(out / "steps")
    last = next((s.fidelity for s in reversed(steps) if s.fidelity is not None), None)
    report = PipelineReport(
        source=str(source.path),
        output=str(final),
        size_before=source.size_bytes,
        size_after=load_onnx(final).size_bytes,
        data=recipe.data.model_dump(),
        steps=tuple(steps),
        fidelity=last,
    )
    atomic_write_text(out / "report.json", report.to_json())
    atomic_write_text(out / "report.md", report.to_markdown())
    return report
