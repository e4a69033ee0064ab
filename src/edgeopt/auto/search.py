"""The search: which recipe, backend and thread count runs fastest, faithfully.

Each candidate recipe (the model as it is, simplified, fp16 weights, int8, structured pruning
at the largest ratio inside the bound, and combinations) goes through the optimization pipeline;
each surviving model runs on each available backend (OpenVINO also at the CPU's reduced
precisions, TVM also tuned for its share of the budget) and thread count. A variant is kept only
when its outputs meet the fidelity bound against the fp32 model on ONNX Runtime, measured on
held-out data through the model's interface, on the backend that will run it.

Then two measurements, as a careful person would do them: a short **screening** of every kept
variant, in groups of at most `SCREEN_GROUP` interleaved with the baseline
(`edgeopt.bench.compare`, one worker process each), then a **confirmation** of the few best
interleaved with the baseline alone. With all 33 of MediaPipe selfie's variants alive at once
the baseline ran at 3.1 ms instead of 2.0 and a variant identical to it screened at 0.79x
(three rounds in the time given); in groups, each variant is ranked against the baseline
measured beside it. The screening ranks; only the confirmation is reported. A winner is declared
only when its confirmed p10 speed-up is above 1.0; otherwise the baseline is written.

Work is cached in ``OUT/cache``: optimized models by recipe, fidelity by variant. A search that
was stopped, or that runs again with a larger budget, starts where the last one ended.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt._api import load
from edgeopt._fs import atomic_write_text
from edgeopt.artifact import ModelArtifact
from edgeopt.auto.html import MaskRow, write_html
from edgeopt.auto.report import write_report
from edgeopt.auto.settings import (
    CANDIDATES,
    PRUNE_RATIOS,
    AutoResult,
    AutoSettings,
    Outcome,
    meets,
    parse_bound,
)
from edgeopt.backends.openvino import reduced_precisions
from edgeopt.bench.environment import usable_cores
from edgeopt.bench.fidelity import (
    mask_reader,
    primary_output,
    run_samples,
    score_samples,
)
from edgeopt.bench.harness import BenchSettings, Variant, compare
from edgeopt.bench.result import Comparison
from edgeopt.card import resolve_card
from edgeopt.errors import ConfigError, EdgeoptError
from edgeopt.interface import infer_interface
from edgeopt.metrics import MASK_METRICS, TASK_METRICS, FidelityMetrics
from edgeopt.pipeline import data_feeds, default_bound, run_pipeline
from edgeopt.recipe import DataSettings, parse_recipe
from edgeopt.registry import backend_names, get_backend

__all__ = ["pick_winner", "search"]

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


class _Search:
    """The state one search shares between its steps."""

    def __init__(self, model: str | os.PathLike[str], out: Path, settings: AutoSettings) -> None:
        self.settings = settings
        self.out = out
        self.cache = out / "cache"
        self.source: ModelArtifact = load(model, settings.shapes)
        self.data = DataSettings(evaluation_count=settings.evaluation_count, source=settings.data)
        self.card = resolve_card(self.source, settings.card)
        stored = self.card.interface.model_dump() if self.card.interface is not None else {}
        iface = infer_interface(self.source, {**stored, **(settings.interface or {})})
        self.iface = iface
        self.feeds = data_feeds(
            self.source,
            self.data,
            self.data.evaluation_count,
            self.data.seed + 1,
            "evaluation",
            iface,
            self.card,
        )
        self.to_mask = mask_reader(iface, self.feeds)
        bound = settings.bound or default_bound(self.card, iface)
        self.bound: str = bound
        self.settings = settings = settings.model_copy(update={"bound": bound})
        metric, _ = parse_bound(bound)
        if metric in MASK_METRICS and self.to_mask is None:
            why = (
                "the feeds are random" if self.feeds.random else "its interface has no mask output"
            )
            raise ConfigError(
                f"the bound {bound} needs a person mask, but {why}: give --data and the "
                "interface flags (or --card), or bound an output metric such as snr>=30"
            )
        if metric in TASK_METRICS and self.feeds.random:
            raise ConfigError(
                f"the bound {bound} needs the task's decoding on real inputs, but the feeds "
                "are random: give --data (images, audio, or a folder of .npz samples)"
            )
        self.output = primary_output(self.source, iface, self.card.task)
        self.reference = run_samples(self.source, self.feeds.feeds, state=self.feeds.state)
        self.self_check = self.score(self.reference)
        self.self_check.value(metric)  # a metric this model cannot give fails here, named
        self.fid_path = self.cache / "fidelity.json"
        self.fid_cache: dict[str, Any] = (
            json.loads(self.fid_path.read_text()) if self.fid_path.is_file() else {}
        )

    def fidelity(
        self, path: str | Path, backend: str, opts: dict[str, Any], note: Progress, name: str
    ) -> dict[str, Any]:
        """The variant's fidelity against the reference (cached), or ``{"error": ...}``."""
        key = _key(
            str(path),
            Path(path).stat().st_size,
            backend,
            opts,
            self.data.model_dump(),
            self.output,
            self.card.to_json(),
        )
        if key not in self.fid_cache:
            note(f"checking fidelity: {name}" + (" (tuning TVM)" if "tune_seconds" in opts else ""))
            try:
                got = run_samples(path, self.feeds.feeds, backend, opts, self.feeds.state)
                self.fid_cache[key] = self.score(got).to_dict()
            except EdgeoptError as e:
                self.fid_cache[key] = {"error": str(e)}
            atomic_write_text(self.fid_path, json.dumps(self.fid_cache))
        result: dict[str, Any] = self.fid_cache[key]
        return result

    def score(self, got: Sequence[dict[str, Any]]) -> FidelityMetrics:
        """A variant's outputs against the reference's, by the model's task."""
        return score_samples(
            self.reference, got, self.output, self.card.task, self.to_mask, self.feeds.random
        )

    def optimized(self, name: str, passes: list[dict[str, Any]], note: Progress) -> tuple[str, str]:
        """The candidate's model file (from the cache when it is there), and its status."""
        if not passes:
            return str(self.source.path), "ok"
        digest = _key(
            self.source.sha256(),
            passes,
            self.data.model_dump(),
            self.settings.interface,
            self.card.to_json(),
        )
        folder = self.cache / "models" / f"{name}-{digest}"
        if (folder / "model.onnx").is_file() and (folder / "report.json").is_file():
            return str(folder / "model.onnx"), "ok"
        note(f"optimizing: {name}")
        recipe = parse_recipe(
            {
                "passes": passes,
                "data": self.data.model_dump(),
                "interface": self.settings.interface,
            },
            name,
        )
        tmp = folder.with_name(folder.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            report = run_pipeline(self.source, recipe, tmp, card=self.settings.card)
        except EdgeoptError as e:
            return str(self.source.path), f"{RECIPE_FAILED}{e}"
        if not any(s.applied for s in report.steps):
            shutil.rmtree(tmp, ignore_errors=True)
            return str(self.source.path), "no pass applied"
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        return str(folder / "model.onnx"), "ok"

    def prune_ratio(self, note: Progress, deadline: float) -> tuple[float | None, str]:
        """The largest of `PRUNE_RATIOS` whose pruned model meets the bound on ORT (the
        ladder stops at the deadline with what it has)."""
        best: float | None = None
        why = ""
        for ratio in PRUNE_RATIOS:
            if time.monotonic() > deadline:
                why = why or f"over budget before pruning at {ratio:g}"
                break
            passes = [self.step({"name": "prune_structured"}, ratio)]
            path, status = self.optimized(f"pruned-{ratio:g}", passes, note)
            if status == "no pass applied":  # too few channels to remove any at this ratio
                why = why or f"pruning at {ratio:g} removes no channel"
                continue
            if status != "ok":
                why = f"pruning at {ratio:g}: {status}"
                break
            fid = self.fidelity(path, "onnxruntime", {}, note, f"pruned-{ratio:g}@onnxruntime")
            ok, status = meets(self.bound, fid) if "error" not in fid else (False, "")
            if not ok:
                why = f"pruning at {ratio:g} {status or fid['error']}"
                break
            best = ratio
        if best is not None:
            note(f"structured pruning: {best:g} is the largest ratio inside {self.settings.bound}")
        return best, why

    def passes(self, candidate: str, ratio: float | None) -> list[dict[str, Any]]:
        """The candidate's passes with the user's pass options and the pruning ratio found."""
        return [self.step(step, ratio) for step in CANDIDATES[candidate]]

    def step(self, step: dict[str, Any], ratio: float | None) -> dict[str, Any]:
        """One pass of a recipe, with the user's options (and the pruning ratio) added."""
        options = {**step.get("options", {}), **self.settings.pass_options.get(step["name"], {})}
        if step["name"] == "prune_structured":
            options["ratio"] = ratio
        return {**step, "options": options}


def search(
    model: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    settings: AutoSettings | None = None,
    progress: Progress | None = None,
) -> AutoResult:
    """Find the fastest variant of ``model`` that meets the fidelity bound.

    Args:
        model: The fp32 model (``.onnx`` or ``.tflite``).
        out_dir: Output folder: ``winner/``, ``report.md``/``.json``, ``comparison.*``
            (the confirmation), ``screening.json``, ``cache/``.
        settings: Bound, budget, candidates, backends, threads.
        progress: Called with one line per step.

    Raises:
        ConfigError: A bad bound, an unknown candidate or backend.
        ModelLoadError: A bad model. BenchmarkError: the baseline could not be measured.
    """
    settings = settings or AutoSettings()
    note = progress or (lambda line: logger.info("%s", line))
    if settings.bound is not None:
        parse_bound(settings.bound)
    unknown = [c for c in settings.candidates if c not in CANDIDATES]
    if unknown:
        raise ConfigError(f"unknown candidate(s) {unknown}; known: {', '.join(CANDIDATES)}")
    started = time.monotonic()
    names = settings.backends or tuple(backend_names())
    backends = [b for b in names if get_backend(b).is_available()]
    for b in set(names) - set(backends):
        note(f"skipping backend {b}: {get_backend(b).install_hint}")
    run = _Search(model, Path(out_dir), settings)
    settings = run.settings  # the bound resolved: the given one, or the task's default
    note(f"fidelity bound: {settings.bound} ({run.feeds.source})")
    # The budget is a hard cap: the search stops early enough for both measurements to fit in
    # it too, with their workers' start-up (`startup_reserve`, which grows as variants are
    # admitted), and skips a step that the slowest of its backend's so far would not fit.
    deadline = started + settings.budget_s - (settings.screen_s + settings.measure_s) * 1.5 - 10.0
    tried = _variants(run, backends, deadline, note)
    measured = [t for t in tried if t.status == "measured"]
    baseline = Variant(name="baseline: ORT fp32", model=str(run.source.path))
    screened: Comparison | None = None
    finalists = measured
    if len(measured) > settings.finalists:
        note(f"screening {len(measured) + 1} variants interleaved for {settings.screen_s:.0f} s")
        screened = _screen(baseline, measured, settings.screen_s)
        tried = _with_speedups(tried, screened, screening=True)
        ranked = sorted(
            (t for t in tried if t.screen_speedup is not None),
            key=lambda t: t.screen_speedup or 0.0,
            reverse=True,
        )
        finalists = ranked[: settings.finalists]
        chosen = {t.name for t in finalists}
        tried = [
            replace(t, status="screened out")
            if t.status == "measured" and t.name not in chosen
            else t
            for t in tried
        ]
    note(
        f"confirming {len(finalists)} variant(s) against the baseline alone for "
        f"{settings.measure_s:.0f} s"
        if finalists
        else f"no variant meets {settings.bound}: measuring the baseline alone"
    )
    confirmed = _measure(baseline, finalists, settings.measure_s)
    tried = _with_speedups(tried, confirmed, screening=False)
    base = Outcome(
        baseline.name,
        "fp32",
        "onnxruntime",
        {},
        str(run.source.path),
        run.self_check.to_dict(),
        "measured",
        1.0,
    )
    tried.insert(0, base)  # the baseline competes too: when nothing beats it, it wins
    best = pick_winner(tried, confirmed)
    winner = best or base
    write_report(run.out, winner, confirmed, screened, tried, settings.bound or "")
    frames, masks = _mask_panel(run, [t for t in tried if t.speedup is not None])
    page = run.out / "report.html"
    write_html(page, winner, tried, settings.bound or "", run.feeds.source, frames, masks)
    if best is not None:
        lo = confirmed.speedup(winner.name)[1]
        note(f"winner: {winner.name}, {winner.speedup:.2f}x (p10 {lo:.2f}x) vs ORT fp32")
    else:
        note("no significant win: no variant's p10 speed-up is above 1.0; wrote the baseline")
    return AutoResult(
        winner=winner,
        tried=tuple(tried),
        comparison=confirmed,
        output=run.out,
        bound=settings.bound or "",
    )


def _mask_panel(
    run: _Search, confirmed: Sequence[Outcome], count: int = 3
) -> tuple[list[np.ndarray], list[MaskRow]]:
    """Evaluation frames (RGB uint8) and the masks of the fp32 model and the confirmed
    variants on them, for ``report.html``; nothing for a model without a person mask."""
    if run.to_mask is None or run.iface is None:
        return [], []
    to_mask, name = run.to_mask, run.output
    feeds = list(run.feeds.feeds[:count])
    rows = [MaskRow("fp32 (ONNX Runtime)", tuple(to_mask(r[name]) for r in run.reference[:count]))]
    for t in confirmed:
        if t.name.startswith("baseline"):
            continue
        try:
            got = run_samples(t.model, feeds, t.backend, t.options, run.feeds.state)
        except EdgeoptError as e:
            logger.warning("report.html: no masks for %s: %s", t.name, e)
            continue
        rows.append(MaskRow(t.name, tuple(to_mask(g[name]) for g in got)))
    frames = []
    for feed in feeds:
        x = np.asarray(feed[run.iface.input_name], np.float32)[0]
        x = x if x.shape[-1] in (3, 4) else np.moveaxis(x, 0, -1)
        x = (x - x.min()) / max(float(x.max() - x.min()), 1e-6)
        frames.append((x[..., :3] * 255).astype(np.uint8))
    return frames, rows


def _variants(
    run: _Search, backends: Sequence[str], deadline: float, note: Progress
) -> list[Outcome]:
    """Every variant with its fidelity and status ("measured": it meets the bound).

    A candidate's model is made when the first of its variants is reached (the pruning
    ladder too), so the budget is spent in the order below, not on models never measured."""
    settings = run.settings
    prune: list[tuple[float | None, str]] = []  # the ladder's answer, once asked
    models: dict[str, tuple[str, str]] = {}  # candidate -> (model file, status)

    def model_of(cand: str) -> tuple[str, str]:
        if cand not in models:
            if cand.startswith("pruned") and not prune and time.monotonic() <= deadline:
                prune.append(run.prune_ratio(note, deadline))
            ratio, prune_why = prune[0] if prune else (None, "")
            if time.monotonic() > deadline:
                models[cand] = str(run.source.path), "over budget"
            elif cand.startswith("pruned") and ratio is None:
                why = f"no pruning ratio inside the bound ({prune_why})"
                models[cand] = str(run.source.path), why
            else:
                models[cand] = run.optimized(cand, run.passes(cand, ratio), note)
        return models[cand]

    # Candidates outside, backends inside (tuned TVM last): the budget reaches every backend
    # with the model as it is before it is spent on one backend's int8 and pruned models (on
    # MediaPipe's hand landmark net, 3 minutes ran out inside ONNX Runtime's candidates and
    # OpenVINO, 5.8x on the face landmark net, was never tried).
    tried: list[Outcome] = []
    every = _backend_variants(backends, settings)
    plain = [v for v in every if "tune_seconds" not in v[1]]
    combos = [(*v, c) for c in settings.candidates for v in plain] + [
        (*v, c) for v in every if "tune_seconds" in v[1] for c in settings.candidates
    ]
    # Tuned TVM for one model, the first that was made, with the whole tuning share: split
    # between 7 candidates a 5-minute budget gave each 17 s, which tunes nothing.
    tuned: list[str | None] = []
    admitted: list[float] = []  # seconds each admitted variant took to compile and check
    slowest: dict[str, float] = {}  # the longest check per backend: what the next may take
    for backend, extra, tag, cand in combos:
        if "tune_seconds" in extra and not tuned:
            tuned.append(next((c for c in models if models[c][1] == "ok"), None))
        if "tune_seconds" in extra and cand != tuned[0]:
            continue  # tuned once, for one model: the share is its own
        path, status = model_of(cand)
        for threads in settings.threads:
            if "tune_seconds" in extra and threads != max(settings.threads):
                continue  # at the most threads
            opts = {**settings.backend_options.get(backend, {}), **extra, "threads": threads}
            name = f"{cand}@{backend}{tag}-{threads}t"
            t = Outcome(name, cand, backend, opts, path, None, status)
            left = deadline - time.monotonic() - startup_reserve(admitted, settings.finalists)
            need = opts.get("tune_seconds", 0.0) + slowest.get(backend, 0.0)
            if left <= 0 or need > left:
                tried.append(replace(t, status="over budget"))
            elif status != "ok":
                tried.append(replace(t, error=status.startswith(RECIPE_FAILED)))
            elif backend == "litert" and CANDIDATES[cand]:
                # LiteRT runs the original .tflite: it cannot run an optimized ONNX model.
                why = "skipped: litert runs only the original .tflite, not this candidate"
                tried.append(replace(t, status=why))
            else:
                began = time.monotonic()
                tried.append(_checked(run, t, note))
                took = time.monotonic() - began
                slowest[backend] = max(slowest.get(backend, 0.0), took)
                if tried[-1].status == "measured":
                    admitted.append(took)
    return tried


RECIPE_FAILED = "recipe failed: "
"""How the status of a variant whose recipe raised begins."""

SPAWN_S = 2.0
"""Seconds a benchmark worker takes to start (a fresh interpreter importing edgeopt and its
runtime) before it compiles its variant."""


def startup_reserve(admitted: Sequence[float], finalists: int) -> float:
    """Seconds the two measurements will spend starting their workers, beyond their own time.

    Every admitted variant gets a worker in the screening, and the finalists again in the
    confirmation; each compiles its variant as its check did (``admitted``: those checks'
    seconds). The screening's workers start together, sharing the cores.
    """
    if not admitted:
        return 0.0
    each = [SPAWN_S + s for s in admitted]
    screening = sum(each) / usable_cores() if len(admitted) > finalists else 0.0
    return screening + sum(sorted(each)[-finalists:])


def _checked(run: _Search, t: Outcome, note: Progress) -> Outcome:
    fid = run.fidelity(t.model, t.backend, t.options, note, t.name)
    if "error" in fid:
        return replace(t, status=fid["error"], error=True)
    ok, status = meets(run.bound, fid)
    opts = t.options
    if "tune_seconds" in opts:  # tuned once above; the benchmark reuses its records
        opts = {k: v for k, v in opts.items() if k != "tune_seconds"} | {"use_database": True}
    return replace(t, options=opts, fidelity=fid, status="measured" if ok else status)


def _measure(baseline: Variant, chosen: Sequence[Outcome], seconds: float) -> Comparison:
    variants = [baseline] + [
        Variant(name=t.name, model=t.model, backend=t.backend, options=t.options) for t in chosen
    ]
    return compare(variants, BenchSettings(warmup=10, runs=None, seconds=seconds))


SCREEN_GROUP = 8
"""Variants screened together with the baseline: few enough processes alive at once that the
machine stays as it is when one variant runs alone."""


def _screen(baseline: Variant, chosen: Sequence[Outcome], seconds: float) -> Comparison:
    """Every variant's speed-up over the baseline measured beside it, in groups of at most
    `SCREEN_GROUP` (the time shared by size), as one comparison: the baseline's samples and
    its rounds from every group."""
    count = -(-len(chosen) // SCREEN_GROUP)
    groups = [chosen[i::count] for i in range(count)]  # the same sizes, within one
    parts = [_measure(baseline, g, seconds * len(g) / len(chosen)) for g in groups]
    base = replace(
        parts[0].baseline,
        samples_ms=tuple(x for p in parts for x in p.baseline.samples_ms),
    )
    speedups = {baseline.name: tuple(x for p in parts for x in p.speedups[baseline.name])}
    for p in parts:
        speedups.update({k: v for k, v in p.speedups.items() if k != baseline.name})
    return Comparison(
        results=(base, *(r for p in parts for r in p.results[1:])),
        speedups=speedups,
        block=parts[0].block,
        environment=parts[0].environment,
        failures={k: v for p in parts for k, v in p.failures.items()},
    )


def _with_speedups(tried: list[Outcome], result: Comparison, screening: bool) -> list[Outcome]:
    """``tried`` with the speed-ups of ``result`` (a variant that failed there says why)."""
    out = []
    for t in tried:
        if t.name in result.failures:
            t = replace(t, status=f"failed: {result.failures[t.name]}", error=True)
        elif t.name in result.speedups and t.name != result.baseline.name:
            median = result.speedup(t.name)[0]
            t = replace(t, screen_speedup=median) if screening else replace(t, speedup=median)
        out.append(t)
    return out


def _backend_variants(
    backends: Sequence[str], settings: AutoSettings
) -> list[tuple[str, dict[str, Any], str]]:
    """(backend, extra options, name tag) to try, cheapest first: each backend as given, OpenVINO
    at each reduced precision this CPU has (admitted only under the fidelity bound, like any
    variant), then tuned TVM (its share of the budget, for one candidate model)."""
    order = {"onnxruntime": 0, "openvino": 1, "litert": 2}
    plain: list[tuple[str, dict[str, Any], str]] = []
    tuned: list[tuple[str, dict[str, Any], str]] = []
    for backend in sorted(backends, key=lambda b: order.get(b, 3)):
        plain.append((backend, {}, ""))
        given = settings.backend_options.get(backend, {})
        if backend == "openvino" and settings.reduced_precision and "precision" not in given:
            plain += [(backend, {"precision": p}, f"-{p}") for p in reduced_precisions()]
        if backend == "tvm" and settings.tvm_tune_share > 0 and "tune_seconds" not in given:
            share = settings.tvm_tune_share * settings.budget_s
            tuned.append((backend, {"tune_seconds": share}, f"-tuned{share:.0f}s"))
    return plain + tuned


def pick_winner(tried: Sequence[Outcome], comparison: Comparison) -> Outcome | None:
    """The fastest confirmed variant whose win is significant, or None.

    A win counts only when it holds in 9 rounds of 10: the p10 of its per-round speed-ups
    over the baseline must be above 1.0 (a median of 1.15x with a p10 of 0.56x is noise).
    Among the significant ones, a variant whose median is within the noise of the fastest
    (at or above the fastest's p10) is as fast: of those, the most faithful wins (highest
    SNR of its worst output), then the faster. Three 2-minute searches on MediaPipe selfie
    (2-core Xeon, 2026-12-08) named OpenVINO bf16 (IoU 0.98, 1.32x and 1.35x) twice and the
    exact ort_layout rewrite (1.35x) once, though both were confirmed at 1.35x in one run:
    now the exact one wins wherever it reaches the confirmation.
    """
    significant = [
        t
        for t in tried
        if t.speedup is not None
        and t.name in comparison.speedups
        and t.name != comparison.baseline.name
        and comparison.speedup(t.name)[1] > 1.0
    ]
    if not significant:
        return None
    fastest = max(significant, key=lambda t: t.speedup or 0.0)
    floor = comparison.speedup(fastest.name)[1]
    tied = [t for t in significant if (t.speedup or 0.0) >= floor]
    return max(tied, key=lambda t: (_snr(t), t.speedup or 0.0))


def _snr(t: Outcome) -> float:
    value = (t.fidelity or {}).get("snr")
    return float(value) if isinstance(value, int | float) and value == value else 0.0
