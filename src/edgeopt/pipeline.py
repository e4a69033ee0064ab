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
from edgeopt.bench.fidelity import (
    FeedSet,
    carried_state,
    feed_set,
    mask_reader,
    primary_output,
    run_samples,
    score_samples,
)
from edgeopt.card import ModelCard, resolve_card, store_card
from edgeopt.data import Role
from edgeopt.htmlpage import Page, decisions, png
from edgeopt.interface import ModelInterface, infer_interface
from edgeopt.loader import load
from edgeopt.passes.base import PassContext
from edgeopt.recipe import DataSettings, Recipe, load_recipe, parse_recipe
from edgeopt.registry import get_pass

__all__ = [
    "PipelineReport",
    "StepReport",
    "data_feeds",
    "default_bound",
    "optimize",
    "run_pipeline",
    "task_metric",
]

logger = logging.getLogger(__name__)

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
    fidelity: dict[str, float | int | str] | None
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
        data: The data settings used, and what the calibration and evaluation sets were.
        steps: One report per pass, in order.
        fidelity: Final fidelity against the input model (None when nothing changed).
        interface: The model interface fidelity was measured through (None: output metrics).
        warnings: What the reader must know (random inputs, no mask metric, ...).
        task: The model card's task (what the outputs mean), None: generic.
        metric: The metric the task is judged by (``iou``, ``f1``, ``nme``, ``snr`` ...).
    """

    source: str
    output: str
    size_before: int
    size_after: int
    data: dict[str, Any]
    steps: tuple[StepReport, ...]
    fidelity: dict[str, float | int | str] | None
    interface: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    task: dict[str, Any] | None = None
    metric: str = "snr"

    def to_json(self) -> str:
        """The report as JSON."""
        data = _finite({"schema": SCHEMA, **asdict(self)})
        return json.dumps(data, indent=2, default=_jsonable, allow_nan=False)

    def _metric_line(self) -> str:
        if self.interface and self.interface.get("output_name"):
            act, ch = self.interface["activation"], self.interface["person_channel"]
            return (
                f"person-mask IoU / boundary F through the interface (activation {act}, "
                f"channel {ch}), plus output errors."
            )
        if self.task is not None and self.metric != "snr":
            return f"{self.task.get('kind')} task: {self.metric} on the decoded outputs."
        return "SNR (dB) of every output, the worst reported, and output errors."

    def write_html(self, path: Path) -> Path:
        """``report.html``: sizes and fidelity per step (a figure and a table), the warnings,
        and each pass's per-layer decisions; self-contained."""
        page = Page(f"edgeopt optimize: {Path(self.source).name}")
        page.para(
            f"Output {self.output}: {self.size_before / 1024:.1f} KiB -> "
            f"{self.size_after / 1024:.1f} KiB. Fidelity against the input model on "
            f"{self.data.get('evaluation')}; calibration on {self.data.get('calibration')}. "
            f"Metric: {self._metric_line()}"
        )
        for w in self.warnings:
            page.para(f"Warning: {w}", bold=("Warning:",))
        page.heading("Size and fidelity, step by step")
        page.image("size and fidelity per step", _size_and_fidelity(self))
        rows = []
        for i, s in enumerate(self.steps, 1):
            f = s.fidelity or {}
            status = _status(s)
            cells = [_fmt(f.get(k)) for k in (self.metric, "snr", "cosine", "max_abs")]
            rows.append(
                (str(i), s.name, status, f"{s.size_bytes / 1024:.1f}", *cells, f"{s.seconds:.2f}")
            )
        headers = ("#", "pass", "status", "size KiB", self.metric, "SNR dB", "cosine", "max abs")
        page.table((*headers, "time s"), rows)
        page.heading("Decisions, layer by layer")
        page.table(("pass", "applied", "decisions"), decisions([asdict(s) for s in self.steps]))
        return page.write(path)

    def to_markdown(self) -> str:
        """The report as a Markdown table plus each pass's notes."""
        lines = [
            f"# Optimization of `{Path(self.source).name}`",
            "",
            f"Output: `{self.output}` — {self.size_before / 1024:.1f} KiB -> "
            f"{self.size_after / 1024:.1f} KiB. Fidelity vs the input model on the "
            f"evaluation set: {self.data.get('evaluation')}; calibration set: "
            f"{self.data.get('calibration')}.",
            "",
            f"Metric: {self._metric_line()}",
            *[f"\n**Warning:** {w}" for w in self.warnings],
            "",
            f"| # | pass | status | size KiB | {self.metric} | SNR dB | cosine | max abs "
            "| time s |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for i, s in enumerate(self.steps, 1):
            f = s.fidelity or {}
            status = _status(s)
            cells = [_fmt(f.get(k)) for k in (self.metric, "snr", "cosine", "max_abs")]
            lines.append(
                f"| {i} | {s.name} | {status} | {s.size_bytes / 1024:.1f} | "
                + " | ".join(cells)
                + f" | {s.seconds:.2f} |"
            )
        for i, s in enumerate(self.steps, 1):
            if s.details:
                lines += ["", f"## {i}. {s.name}", "", "```json", _short_json(s.details), "```"]
        return "\n".join(lines) + "\n"


def _status(step: StepReport) -> str:
    return (
        "applied" if step.applied else f"skipped: {step.skipped}" if step.skipped else "no change"
    )


def _size_and_fidelity(report: PipelineReport) -> str:
    """Bars: each step's model size; line: its fidelity by the report's metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["input", *(f"{i}. {s.name}" for i, s in enumerate(report.steps, 1))]
    sizes = [report.size_before / 1024, *(s.size_bytes / 1024 for s in report.steps)]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(names, sizes, color="#9ecae1")
    ax.set_ylabel("model size, KiB")
    values = [(s.fidelity or {}).get(report.metric) for s in report.steps]
    if any(isinstance(v, int | float) and v == v for v in values):
        other = ax.twinx()
        other.plot(
            names[1:], [v if v is not None else float("nan") for v in values], "o-", c="#d62728"
        )
        other.set_ylabel(report.metric)
    text = png(fig)
    plt.close(fig)
    return text


def _finite(v: Any) -> Any:
    """``v`` with NaN (a metric that does not apply) as None: strict JSON has no NaN."""
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


def _fmt(v: Any) -> str:
    return (
        "-"
        if v is None or (isinstance(v, float) and v != v)
        else f"{v:.4f}"
        if isinstance(v, float)
        else str(v)
    )


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    return str(v)


def _short_json(details: Mapping[str, Any]) -> str:
    text = json.dumps(details, indent=2, default=_jsonable)
    return text if len(text) < 6000 else text[:6000] + "\n... (see report.json)"


def task_metric(card: ModelCard, iface: ModelInterface | None) -> str:
    """The metric a model is judged by: its task's metric, mask IoU for a mask without a
    task (or with the segmentation task), else SNR. A pose net with a mask output beside its
    landmarks is judged by its landmarks."""
    if card.task is not None and card.task.metric != "iou":
        return card.task.metric
    if iface is not None and iface.has_mask:
        return "iou"
    return card.task.metric if card.task is not None else "snr"


def default_bound(card: ModelCard, iface: ModelInterface | None) -> str:
    """The bound used when none is given: the task's default (mask IoU >= 0.98 for a mask
    without a task)."""
    if card.task is None and iface is not None and iface.has_mask:
        return "iou>=0.98"
    return card.bound


def data_feeds(
    model: ModelArtifact,
    data: DataSettings,
    count: int,
    seed: int,
    role: Role = "evaluation",
    interface: ModelInterface | None = None,
    card: ModelCard | None = None,
) -> FeedSet:
    """Inputs for calibration or evaluation as the data settings say (see `feed_set`)."""
    return feed_set(model, data.source, count, seed, role, interface, card)


def run_pipeline(
    model: ModelArtifact | str | os.PathLike[str],
    recipe: Recipe,
    out_dir: str | os.PathLike[str],
    progress: StepProgress | None = None,
    interface: Mapping[str, Any] | None = None,
    card: Mapping[str, Any] | None = None,
) -> PipelineReport:
    """Run ``recipe`` on ``model``, writing the optimized model and its report into ``out_dir``.

    Args:
        model: The fp32 model (the fidelity reference).
        recipe: The passes and data settings.
        out_dir: Output folder (created): model.onnx, report.json, report.md, steps/.
        progress: Called with (step index, step count, pass name) before each pass.
        interface: Model interface fields (flags or a card) on top of the recipe's and of
            what the graph says; see `edgeopt.interface.infer_interface`.
        card: Model card fields (task, values, audio, state) on top of the card stored in
            the model; see `edgeopt.card`.

    Raises:
        ModelLoadError: Bad input model. ConfigError: bad options or data.
        BackendError: A pass or a backend failed.
    """
    source = model if isinstance(model, ModelArtifact) else load_onnx(model)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    the_card = resolve_card(source, card)
    stored = the_card.interface.model_dump() if the_card.interface is not None else {}
    fields = {**stored, **(recipe.interface or {}), **(interface or {})}
    iface = infer_interface(source, fields)
    d = recipe.data
    calibration = data_feeds(source, d, d.calibration_count, d.seed, "calibration", iface, the_card)
    calibration = carried_state(source, calibration, recipe.backend)
    evaluation = data_feeds(
        source, d, d.evaluation_count, d.seed + 1, "evaluation", iface, the_card
    )
    remove_stale(out, _WORK_PREFIX)  # step folders of a killed run
    work = Path(tempfile.mkdtemp(prefix=f"{_WORK_PREFIX}{os.getpid()}-", dir=out))
    try:
        return _run_steps(
            source, recipe, out, work, calibration, evaluation, progress, iface, the_card
        )
    finally:  # an error, Ctrl-C or SIGTERM leaves no half-made step folder behind
        shutil.rmtree(work, ignore_errors=True)


_WORK_PREFIX = ".steps-edgeopt-"


def _run_steps(
    source: ModelArtifact,
    recipe: Recipe,
    out: Path,
    work: Path,
    calibration: FeedSet,
    evaluation: FeedSet,
    progress: StepProgress | None,
    iface: ModelInterface | None,
    card: ModelCard,
) -> PipelineReport:
    """The passes, in ``work``; its steps/ folder replaces ``out/steps`` when all succeeded."""
    state = evaluation.state
    reference = run_samples(source, evaluation.feeds, recipe.backend, state=state)
    primary = primary_output(source, iface, card.task)
    to_mask = mask_reader(iface, evaluation)
    warnings = []
    if evaluation.random:
        warnings.append(
            f"fidelity was measured on random inputs ({evaluation.source}), not on images: "
            "no mask metric is claimed; give --data and the model's interface"
        )
    elif to_mask is None and card.task is None:
        warnings.append(
            "the model's card gives no task and its output is not read as a person mask: "
            "output errors only (SNR per output); give the task in a model card (--card)"
        )
    for w in warnings:
        logger.warning("%s", w)
    current = source
    steps: list[StepReport] = []
    for i, step in enumerate(recipe.passes, 1):
        if progress:
            progress(i, len(recipe.passes), step.name)
        impl = get_pass(step.name)
        ctx = PassContext(
            workdir=work / "steps" / f"{i:02d}-{step.name}",
            calibration=calibration.feeds if "calibration" in tuple(impl.requires) else (),
            options=step.options,
            interface=iface,
        )
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        result = impl.apply(current, ctx)
        seconds = time.perf_counter() - t0
        fidelity = None
        if result.skipped is not None:
            logger.warning("pass %s skipped: %s", step.name, result.skipped)
        elif result.modified:
            current = store_card(result.model, card) if card != ModelCard() else result.model
            got = run_samples(current, evaluation.feeds, recipe.backend, state=state)
            metrics = score_samples(reference, got, primary, card.task, to_mask, evaluation.random)
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
        data={
            **recipe.data.model_dump(),
            "calibration": calibration.source,
            "evaluation": evaluation.source,
        },
        steps=tuple(steps),
        fidelity=last,
        interface=iface.model_dump(mode="json") if iface is not None else None,
        warnings=tuple(warnings),
        task=card.task.model_dump(mode="json") if card.task is not None else None,
        metric=task_metric(card, iface),
    )
    atomic_write_text(out / "report.json", report.to_json())
    atomic_write_text(out / "report.md", report.to_markdown())
    report.write_html(out / "report.html")
    return report


def optimize(
    model: ModelArtifact | str | os.PathLike[str],
    recipe: Recipe | Mapping[str, Any] | str | os.PathLike[str],
    output: str | os.PathLike[str],
    interface: Mapping[str, Any] | None = None,
    progress: StepProgress | None = None,
    card: Mapping[str, Any] | None = None,
    shapes: Mapping[str, Sequence[int]] | None = None,
) -> PipelineReport:
    """Optimize a model: run a recipe's passes, measure each, write the model and a report.

    The same as ``edgeopt optimize``: ``edgeopt.optimize("mediapipe-selfie", {"passes":
    [{"name": "quantize", "options": {"mode": "static", "accuracy": "iou>=0.98"}}]}, "out")``.

    Args:
        model: The fp32 model: an artifact, or what `edgeopt.load` opens (a zoo name, an
            ``.onnx``, ``.tflite`` or PyTorch file).
        recipe: A `Recipe`, its dict form (``{"passes": [{"name": "quantize"}]}``), or the
            path of a YAML recipe.
        output: The output folder: ``model.onnx``, ``report.json``, ``report.md``, ``steps/``.
        interface: Model interface fields (a card's) on top of what the graph says.
        progress: Called with (step, steps, pass name) before each pass.
        card: Model card fields (task, values, audio, state) on top of the stored card.
        shapes: Sizes of inputs with dynamic dimensions (``--shape``), by input name.

    Raises:
        ConfigError: A bad recipe or interface. ModelLoadError: a bad model.
        EdgeoptError: A pass or backend failed.
    """
    if not isinstance(model, ModelArtifact):
        model = load(model, shapes)
    if isinstance(recipe, Recipe):
        plan = recipe
    elif isinstance(recipe, Mapping):
        plan = parse_recipe(dict(recipe))
    else:
        plan = load_recipe(recipe)
    return run_pipeline(model, plan, output, progress, interface, card)
