"""Automatic search: which optimization recipe, backend and thread count runs fastest, faithfully.

``search`` tries each candidate recipe (the fp32 model as it is, simplified, fp16 weights, int8
...) through the optimization pipeline, then each surviving model on each available backend
and thread count, and keeps only the variants whose outputs meet the fidelity bound against
the fp32 model on ONNX Runtime (measured on held-out real images, on the backend that will run
them). The survivors are measured interleaved against the ORT fp32 baseline, one worker process
each (`edgeopt.bench.compare`), and the fastest one is written out: its model, the backend
settings, the comparison (JSON, Markdown, chart) and why every other variant lost.

Work is cached in ``OUT/cache``: optimized models by recipe, fidelity by variant. A search that
was stopped, or that runs again with a larger budget, starts where the last one ended.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgeopt._api import load
from edgeopt._fs import atomic_path, atomic_write_text
from edgeopt.artifact import ModelArtifact
from edgeopt.backends.openvino import reduced_precisions
from edgeopt.bench.fidelity import compare_outputs, mask_reader, run_outputs
from edgeopt.bench.harness import BenchSettings, Variant, compare
from edgeopt.bench.report import markdown, save_chart
from edgeopt.bench.result import Comparison
from edgeopt.errors import ConfigError, EdgeoptError
from edgeopt.interface import infer_interface
from edgeopt.metrics import MASK_METRICS
from edgeopt.pipeline import data_feeds, run_pipeline
from edgeopt.recipe import DataSettings, parse_recipe
from edgeopt.registry import backend_names, get_backend

__all__ = [
    "CANDIDATES",
    "AutoResult",
    "AutoSettings",
    "Tried",
    "parse_bound",
    "search",
    "summary_rows",
]

log = logging.getLogger(__name__)
Progress = Callable[[str], None]

CANDIDATES: dict[str, list[dict[str, Any]]] = {
    "fp32": [],
    "simplified": [{"name": "simplify"}],
    "ort-layout": [{"name": "ort_layout"}],
    "fp16-weights": [{"name": "fp16"}],
    "int8-static": [{"name": "simplify"}, {"name": "quantize", "options": {"mode": "static"}}],
}
"""Built-in candidate recipes: name -> passes (``fp32`` is the model as it is)."""

_BOUND = re.compile(r"^\s*([a-z_]+)\s*(>=|<=)\s*([0-9.eE+-]+)\s*$")


def parse_bound(text: str) -> tuple[str, float]:
    """Parse a fidelity bound such as ``iou>=0.98`` or ``max_abs<=1e-3``.

    Raises:
        ConfigError: Not of the form METRIC>=VALUE or METRIC<=VALUE.
    """
    m = _BOUND.match(text)
    if not m:
        raise ConfigError(f"bad fidelity bound {text!r}: write it like iou>=0.98 or max_abs<=1e-3")
    return m.group(1), float(m.group(3))


class AutoSettings(BaseModel):
    """What the search tries and how long it may take."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bound: str = Field(default="iou>=0.98", description="Fidelity bound every variant must meet.")
    budget_s: float = Field(default=900.0, gt=0, description="Wall-clock budget of the search.")
    candidates: tuple[str, ...] = Field(
        default=tuple(CANDIDATES), description="Candidate recipes, by name (see CANDIDATES)."
    )
    backends: tuple[str, ...] | None = Field(
        default=None, description="Backends to try; None: every available one."
    )
    threads: tuple[int, ...] = Field(default=(1, 2), description="Thread counts to try.")
    backend_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Extra options per backend (e.g. TVM tuning budget)."
    )
    measure_s: float = Field(default=20.0, gt=0, description="Interleaved measurement time.")
    evaluation_count: int = Field(default=12, ge=1, description="Held-out images for fidelity.")
    data: str = Field(
        default="auto", description="Calibration/evaluation images: auto, builtin, folder, video."
    )
    tvm_tune_share: float = Field(
        default=0.4,
        ge=0.0,
        le=0.9,
        description="Share of the budget given to tuning TVM, split between the candidate "
        "models (0: untuned TVM only). The tuning database is kept: a second search reuses it.",
    )
    reduced_precision: bool = Field(
        default=True,
        description="Also try OpenVINO at bf16/f16 where the CPU has them (kept only if they "
        "meet the bound on the evaluation data).",
    )
    interface: dict[str, Any] | None = Field(
        default=None, description="Model interface fields (a model card's), on top of the graph's."
    )


@dataclass(frozen=True)
class Tried:
    """One variant the search considered, and what became of it."""

    name: str
    candidate: str
    backend: str
    options: dict[str, Any]
    model: str
    fidelity: dict[str, float | int | str] | None
    status: str  # "measured", or why it was dropped
    speedup: float | None = None


@dataclass(frozen=True)
class AutoResult:
    """The search's outcome: the winner, everything tried, and the comparison."""

    winner: Tried
    tried: tuple[Tried, ...]
    comparison: Comparison
    output: Path


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def _optimized(
    source: ModelArtifact,
    name: str,
    data: DataSettings,
    cache: Path,
    note: Progress,
    interface: dict[str, Any] | None,
) -> tuple[Path, str]:
    """The candidate's model file (from the cache when it is there), and its status."""
    if not CANDIDATES[name]:
        return source.path, "ok"
    folder = (
        cache
        / "models"
        / f"{name}-{_key(source.sha256(), CANDIDATES[name], data.model_dump(), interface)}"
    )
    if (folder / "model.onnx").is_file() and (folder / "report.json").is_file():
        return folder / "model.onnx", "ok"
    note(f"optimizing: {name}")
    recipe = parse_recipe(
        {"passes": CANDIDATES[name], "data": data.model_dump(), "interface": interface}, name
    )
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        report = run_pipeline(source, recipe, tmp)
    except EdgeoptError as e:
        return source.path, f"recipe failed: {e}"
    if not any(s.applied for s in report.steps):
        shutil.rmtree(tmp, ignore_errors=True)
        return source.path, "no pass applied"
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder / "model.onnx", "ok"


def _write_winner(out: Path, winner: Tried, result: Comparison, tried: Sequence[Tried]) -> None:
    folder = out / "winner"
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "model.onnx") as tmp:
        shutil.copyfile(winner.model, tmp)
    settings = {"backend": winner.backend, "options": winner.options, "candidate": winner.candidate}
    atomic_write_text(folder / "settings.json", json.dumps(settings, indent=2))
    atomic_write_text(out / "comparison.json", result.to_json())
    save_chart(result, out / "comparison.png", title="edgeopt auto: variants vs ORT fp32")
    lines = [
        "# edgeopt auto",
        "",
        f"Winner: **{winner.name}** ({winner.backend}, {winner.options}, recipe {winner.candidate})"
        f" — {winner.speedup:.2f}x vs ORT fp32.",
        "",
        markdown(result),
        "## Every variant tried",
        "",
        "| variant | backend | fidelity (IoU / cosine) | status | speed-up |",
        "|---|---|---|---|---|",
    ]
    for t in tried:
        f = t.fidelity or {}
        fid = (
            f"{f.get('iou', float('nan')):.4f} / {f.get('cosine', float('nan')):.4f}" if f else "-"
        )
        sp = f"{t.speedup:.2f}x" if t.speedup is not None else "-"
        lines.append(f"| {t.name} | {t.backend} | {fid} | {t.status} | {sp} |")
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    atomic_write_text(
        out / "report.json",
        json.dumps(
            {"winner": asdict(winner), "tried": [asdict(t) for t in tried]}, indent=2, default=str
        ),
    )


def search(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    settings: AutoSettings | None = None,
    progress: Progress | None = None,
) -> AutoResult:
    """Find the fastest variant of ``model`` that meets the fidelity bound.

    Args:
        model: The fp32 model (``.onnx`` or ``.tflite``).
        out_dir: Output folder: ``winner/``, ``report.md``/``.json``, ``comparison.*``, ``cache/``.
        settings: Bound, budget, candidates, backends, threads.
        progress: Called with one line per step.

    Raises:
        ConfigError: A bad bound, an unknown candidate or backend.
        ModelLoadError: A bad model. BenchmarkError: the measurement failed.
    """
    settings = settings or AutoSettings()
    note = progress or (lambda line: log.info("%s", line))
    metric, threshold = parse_bound(settings.bound)
    unknown = [c for c in settings.candidates if c not in CANDIDATES]
    if unknown:
        raise ConfigError(f"unknown candidate(s) {unknown}; known: {', '.join(CANDIDATES)}")
    started = time.monotonic()
    out = Path(out_dir)
    cache = out / "cache"
    source = load(model)
    names = settings.backends or tuple(backend_names())
    backends = [b for b in names if get_backend(b).is_available()]
    for b in set(names) - set(backends):
        note(f"skipping backend {b}: {get_backend(b).install_hint}")
    data = DataSettings(evaluation_count=settings.evaluation_count, source=settings.data)
    iface = infer_interface(source, settings.interface)
    feeds = data_feeds(source, data, data.evaluation_count, data.seed + 1, "evaluation", iface)
    to_mask = mask_reader(iface, feeds)
    if metric in MASK_METRICS and to_mask is None:
        why = "the feeds are random" if feeds.random else "its interface has no mask output"
        raise ConfigError(
            f"the bound {settings.bound} needs a person mask, but {why}: give --data and the "
            "interface flags (or --card), or bound an output metric such as cosine>=0.999"
        )
    output = iface.output_name if iface is not None else None
    reference = run_outputs(source, feeds.feeds, output=output)
    fid_path = cache / "fidelity.json"
    fid_cache: dict[str, Any] = json.loads(fid_path.read_text()) if fid_path.is_file() else {}
    tried: list[Tried] = []
    # The budget is a hard cap: the search stops early enough for the final measurement (and
    # its workers' start-up) to fit in it too.
    deadline = started + settings.budget_s - settings.measure_s * 1.5 - 10.0
    for cand in settings.candidates:
        over = time.monotonic() > deadline
        path, status = (
            (source.path, "over budget")
            if over
            else _optimized(source, cand, data, cache, note, settings.interface)
        )
        for backend, extra, tag in _backend_variants(backends, settings):
            for threads in settings.threads:
                opts = {**settings.backend_options.get(backend, {}), **extra, "threads": threads}
                name = f"{cand}@{backend}{tag}-{threads}t"
                left = deadline - time.monotonic()
                if left <= 0 or ("tune_seconds" in opts and opts["tune_seconds"] > left):
                    tried.append(Tried(name, cand, backend, opts, str(path), None, "over budget"))
                    continue
                if status != "ok":
                    tried.append(Tried(name, cand, backend, opts, str(path), None, status))
                    continue
                if backend == "litert" and CANDIDATES[cand]:
                    # LiteRT runs the original .tflite: it cannot run an optimized ONNX model.
                    why = "skipped: litert runs only the original .tflite, not this candidate"
                    tried.append(Tried(name, cand, backend, opts, str(path), None, why))
                    continue
                key = _key(
                    str(path), Path(path).stat().st_size, backend, opts, data.model_dump(), output
                )
                if key not in fid_cache:
                    note(
                        f"checking fidelity: {name}"
                        + (" (tuning TVM)" if "tune_seconds" in opts else "")
                    )
                    try:
                        got = run_outputs(path, feeds.feeds, backend, opts, output)
                        fid_cache[key] = compare_outputs(reference, got, to_mask).to_dict()
                    except EdgeoptError as e:
                        fid_cache[key] = {"error": str(e)}
                    atomic_write_text(fid_path, json.dumps(fid_cache))
                fid = fid_cache[key]
                if "error" in fid:
                    tried.append(Tried(name, cand, backend, opts, str(path), None, fid["error"]))
                    continue
                value = float(fid[metric]) if metric in fid else float("nan")
                ok = value <= threshold if metric in ("max_abs", "mean_abs") else value >= threshold
                status_ = "measured" if ok else f"fails {settings.bound} ({metric} {value:.4f})"
                if "tune_seconds" in opts:  # tuned once above; the benchmark reuses its records
                    opts = {k: v for k, v in opts.items() if k != "tune_seconds"}
                    opts["use_database"] = True
                tried.append(Tried(name, cand, backend, opts, str(path), fid, status_))
    measured = [t for t in tried if t.status == "measured"]
    baseline = Variant(name="baseline: ORT fp32", model=str(source.path))
    variants = [baseline] + [
        Variant(name=t.name, model=t.model, backend=t.backend, options=t.options) for t in measured
    ]
    note(f"measuring {len(variants)} variants interleaved for {settings.measure_s:.0f} s")
    result = compare(variants, BenchSettings(warmup=10, runs=None, seconds=settings.measure_s))
    speed = {t.name: result.speedup(t.name)[0] for t in measured}
    tried = [
        Tried(**{**asdict(t), "speedup": speed.get(t.name)}) if t.name in speed else t
        for t in tried
    ]
    # The baseline competes too: when nothing beats it, it is the honest winner.
    base = Tried(
        baseline.name,
        "fp32",
        "onnxruntime",
        {},
        str(source.path),
        compare_outputs(reference, reference, to_mask).to_dict(),
        "measured",
        1.0,
    )
    tried.insert(0, base)
    best = pick_winner(tried, result)
    winner = best or base
    _write_winner(out, winner, result, tried)
    if best is not None:
        lo = result.speedup(winner.name)[1]
        note(f"winner: {winner.name}, {winner.speedup:.2f}x (p10 {lo:.2f}x) vs ORT fp32")
    else:
        note("no significant win: no variant's p10 speed-up is above 1.0; wrote the baseline")
    return AutoResult(winner=winner, tried=tuple(tried), comparison=result, output=out)


def _backend_variants(
    backends: Sequence[str], settings: AutoSettings
) -> list[tuple[str, dict[str, Any], str]]:
    """(backend, extra options, name tag) to try: each backend as given, plus OpenVINO at each
    reduced precision this CPU has (admitted only under the fidelity bound, like any variant)."""
    out: list[tuple[str, dict[str, Any], str]] = []
    for backend in backends:
        out.append((backend, {}, ""))
        given = settings.backend_options.get(backend, {})
        if backend == "openvino" and settings.reduced_precision and "precision" not in given:
            out += [(backend, {"precision": p}, f"-{p}") for p in reduced_precisions()]
        if backend == "tvm" and settings.tvm_tune_share > 0 and "tune_seconds" not in given:
            # The share is the whole search's: split between the candidate models.
            share = settings.tvm_tune_share * settings.budget_s / max(1, len(settings.candidates))
            out.append((backend, {"tune_seconds": share}, f"-tuned{share:.0f}s"))
    return out


def pick_winner(tried: Sequence[Tried], comparison: Comparison) -> Tried | None:
    """The fastest measured variant whose win is significant, or None.

    A win counts only when it holds in 9 rounds of 10: the p10 of its per-round speed-ups
    over the baseline must be above 1.0 (a median of 1.15x with a p10 of 0.56x is noise).
    """
    significant = [
        t
        for t in tried
        if t.speedup is not None
        and t.name in comparison.speedups
        and t.name != comparison.baseline.name
        and comparison.speedup(t.name)[1] > 1.0
    ]
    return max(significant, key=lambda t: t.speedup or 0.0) if significant else None


def summary_rows(result: AutoResult) -> list[tuple[str, ...]]:
    """Rows for a table of every variant tried: name, backend, IoU, status, speed-up."""
    rows: list[tuple[str, ...]] = []
    for t in result.tried:
        value = t.fidelity.get("iou") if t.fidelity else None
        iou = f"{value:.4f}" if isinstance(value, float) and value == value else "-"
        sp = f"{t.speedup:.2f}x" if t.speedup is not None else "-"
        rows.append((t.name, t.backend, iou, t.status, sp))
    return rows
