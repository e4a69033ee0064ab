"""The benchmark harness: every variant in its own worker process, measured interleaved.

Runtimes that share one process on two cores disturb each other (ORT's spinning intra-op
threads measured 2x slower beside TVM in one process, and equal on their own), so each variant
gets a worker process of its own, started with ``spawn`` so no runtime state is inherited.
The parent hands out blocks of timed calls in turn, in a new random order each round (a fixed
rotation — A B C, B C A, C A B — still puts each variant right after the same neighbour, whose
leftover work then always lands on it), and only one worker runs at a time. A slow minute on
a shared machine then hits every variant alike, and the per-round speed-up (baseline median /
variant median within the round) stays stable where absolute numbers drift. The first round
after every worker is ready is a warm-up, not recorded: the workers compiled side by side, and
each one's first block after that ran cold (up to 2.6x slower in an ``auto`` screening of 33).
"""

from __future__ import annotations

import math
import multiprocessing as mp
import random
import resource
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeopt.artifact import TensorSpec, load_onnx
from edgeopt.backends.base import feeds_for, parse_options
from edgeopt.backends.saved import is_saved, read_saved
from edgeopt.bench.environment import environment
from edgeopt.bench.result import BenchmarkResult, Comparison
from edgeopt.bench.worker import Worker
from edgeopt.card import ModelCard, card_of, constant_feeds
from edgeopt.data import load_images
from edgeopt.errors import BenchmarkError, ConfigError
from edgeopt.interface import ModelInterface, infer_interface
from edgeopt.registry import get_backend

__all__ = ["BenchSettings", "Variant", "compare"]

Progress = Callable[[int, int], None]


class Variant(BaseModel):
    """One thing to measure: a model on a backend with options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Label shown in tables and charts; unique in a comparison.")
    model: str = Field(description="Path of the .onnx model, or of a compiled-artifact folder.")
    backend: str = Field(default="onnxruntime", description="Registered backend name.")
    options: dict[str, Any] = Field(default_factory=dict, description="Backend options.")
    shapes: dict[str, list[int]] = Field(
        default_factory=dict, description="Sizes of inputs with dynamic dimensions, by name."
    )
    data: str | None = Field(
        default=None,
        description="A folder of images or a video: the feed is its first evaluation image "
        "through the model's interface, instead of random numbers.",
    )
    interface: dict[str, Any] | None = Field(
        default=None, description="Interface fields for ``data`` on top of the graph's."
    )


class BenchSettings(BaseModel):
    """How long and how to measure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warmup: int = Field(default=10, ge=0, description="Untimed runs per variant before timing.")
    runs: int | None = Field(default=100, ge=1, description="Timed runs per variant.")
    seconds: float | None = Field(
        default=None, gt=0, description="Time budget for all timed runs (replaces runs)."
    )
    block: int = Field(default=10, ge=1, description="Timed calls per variant per round.")
    min_rounds: int = Field(
        default=5,
        ge=1,
        description="With ``seconds``: rounds measured even when the time is up (the speed-up "
        "is a median over rounds; three are not enough to rank variants).",
    )
    seed: int = Field(default=0, description="Seed of the random input feeds.")
    timeout_s: float = Field(default=600.0, gt=0, description="Longest wait for one worker step.")

    @model_validator(mode="after")
    def _one_budget(self) -> BenchSettings:
        if self.runs is None and self.seconds is None:
            raise ValueError("give either runs or seconds")
        return self


def _rss_mb() -> float:
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def _peak_rss_mb() -> float:
    """This process's peak resident memory in MiB.

    ``/proc/self/status``'s ``VmHWM`` where there is one: ``getrusage``'s ``ru_maxrss`` keeps
    the peak of the process before ``exec``, so every spawned worker of a 1.6 GB ``auto`` parent
    reported 1635 MB.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _worker(conn: Connection, variant: dict[str, Any], warmup: int, seed: int) -> None:
    """Worker process: compile once, then time blocks of calls on request."""
    try:
        rss0 = _rss_mb()
        backend = get_backend(variant["backend"])
        t0 = time.perf_counter()
        if is_saved(variant["model"]):  # a compiled artifact: load it, no compiler
            compiled = backend.load(Path(variant["model"]))
            size = sum(p.stat().st_size for p in Path(variant["model"]).iterdir())
        else:
            artifact = load_onnx(variant["model"])
            options = parse_options(backend.options_type, variant["options"], backend.name)
            compiled = backend.compile(artifact, options)
            size = artifact.size_bytes
        compile_s = time.perf_counter() - t0
        if variant["data"]:
            feeds = _data_feeds(variant, compiled.inputs)
        elif is_saved(variant["model"]):
            feeds = feeds_for(compiled.inputs, variant["shapes"], seed=seed)
        else:  # the card's sizes for what stayed dynamic, its constants and initial state
            card = card_of(artifact) or ModelCard()
            feeds = feeds_for(compiled.inputs, {**card.shapes, **variant["shapes"]}, seed=seed)
            feeds.update(constant_feeds(artifact.inputs, card, artifact.path))
        for _ in range(warmup):
            compiled.run(feeds)
        conn.send(("ready", compile_s, size, rss0))
        while True:
            msg = conn.recv()
            if msg[0] == "block":
                samples = []
                for _ in range(msg[1]):
                    t = time.perf_counter_ns()
                    compiled.run(feeds)
                    samples.append((time.perf_counter_ns() - t) / 1e6)
                conn.send(("samples", samples))
            else:
                peak = _peak_rss_mb()
                conn.send(("done", peak, _rss_mb()))
                return
    except BaseException as e:
        conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))


def _cpu_ns(pid: int) -> int | None:
    """CPU time of every thread of ``pid`` in ns (Linux ``schedstat``: ns resolution, where
    ``cpu_times`` ticks in 10 ms steps); None where it cannot be read."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total


def _wait_idle(pid: int | None, limit_s: float = 0.06) -> None:
    """Wait until a worker stops using CPU, at most ``limit_s``.

    ONNX Runtime's threads spin in bursts for about 20-25 ms after a run (``schedstat``, on
    this session's 2-core Xeon): with the fixed 2 ms pause used before, they kept both cores
    busy while the next worker's block started.
    """
    if pid is None:
        return
    last = _cpu_ns(pid)
    if last is None:
        time.sleep(0.002)
        return
    end = time.monotonic() + limit_s
    quiet = 0
    while time.monotonic() < end and quiet < 5:  # idle for 5 ms in a row (spin comes in bursts)
        time.sleep(0.001)
        now = _cpu_ns(pid)
        if now is None:
            return
        quiet = quiet + 1 if now - last < 200_000 else 0  # under 0.2 ms of CPU in 1 ms
        last = now


def _data_feeds(variant: dict[str, Any], inputs: Sequence[TensorSpec]) -> dict[str, Any]:
    """One real input: the first evaluation image of ``data`` through the model's interface."""
    fields = dict(variant["interface"] or {})
    if is_saved(variant["model"]):
        iface = ModelInterface.model_validate(
            {**(read_saved(variant["model"]).get("interface") or {}), **fields}
        )
    else:
        found = infer_interface(load_onnx(variant["model"]), fields)
        if found is None:
            raise ConfigError(
                f"{variant['model']}: --data needs an image input [1,H,W,3] or [1,3,H,W]"
            )
        iface = found
    image = load_images(variant["data"], 1, "evaluation").images[0]
    if {s.name for s in inputs} != {iface.input_name}:
        raise ConfigError(f"{variant['model']}: --data feeds one image input, the model has more")
    return {iface.input_name: iface.preprocess(image, "RGB")}


def _check(variants: Sequence[Variant]) -> None:
    if not variants:
        raise ConfigError("nothing to benchmark: give at least one variant")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"variant names must be unique, got {names}")
    for v in variants:
        # Fail here, with the file's own error, rather than inside a worker.
        if is_saved(v.model):
            meta = read_saved(v.model)
            if meta["backend"] != get_backend(v.backend).name:
                raise ConfigError(f"{v.model} was compiled for {meta['backend']}, not {v.backend}")
            specs = [TensorSpec(i["name"], i["dtype"], tuple(i["shape"])) for i in meta["inputs"]]
            shapes = dict(v.shapes)
        else:
            artifact = load_onnx(v.model)
            specs = list(artifact.inputs)
            impl = get_backend(v.backend)
            parse_options(impl.options_type, v.options, impl.name)
            card = card_of(artifact) or ModelCard()
            shapes = {**{k: list(d) for k, d in card.shapes.items()}, **v.shapes}
        feeds_for(specs, shapes)  # an unknown dimension is an error that names it


def _round(
    workers: list[Worker],
    block: int,
    order: random.Random,
    drop: Callable[[Worker, BenchmarkError], None],
) -> dict[str, list[float]]:
    """One block of timed calls from every worker, one at a time, in a random order."""
    out: dict[str, list[float]] = {}
    for w in order.sample(workers, len(workers)):
        w.send("block", block)
        try:
            out[w.name] = w.recv()[1]
        except BenchmarkError as e:
            drop(w, e)
            continue
        _wait_idle(w.pid)  # its spinning runtime threads must not slow the next
    return out


def compare(
    variants: Sequence[Variant],
    settings: BenchSettings | None = None,
    progress: Progress | None = None,
) -> Comparison:
    """Measure variants interleaved, each in its own process; the first is the baseline.

    Args:
        variants: What to measure; the first one is the baseline of every speed-up.
        settings: Warm-up, budget and block size.
        progress: Called with (done, total) timed blocks as rounds complete.

    Returns:
        The comparison, every sample kept.

    A variant whose worker fails (a backend that cannot compile the model, a crash) becomes
    an entry of ``Comparison.failures`` with its one-line error; the others are measured.

    Raises:
        ModelLoadError: A model file is bad. ConfigError: bad options.
        BenchmarkError: The baseline's worker failed or hung.
    """
    settings = settings or BenchSettings()
    _check(variants)
    ctx = mp.get_context("spawn")
    workers = [
        Worker(
            ctx,
            v.name,
            _worker,
            (v.model_dump(), settings.warmup, settings.seed),
            settings.timeout_s,
        )
        for v in variants
    ]
    samples: dict[str, list[float]] = {v.name: [] for v in variants}
    speedups: dict[str, list[float]] = {v.name: [] for v in variants}
    failures: dict[str, str] = {}

    def drop(w: Worker, e: BenchmarkError) -> None:
        if w.name == variants[0].name:
            raise BenchmarkError(f"the baseline could not be measured: {e}") from e
        failures[w.name] = str(e).split("\n", 1)[0]
        w.close()
        workers.remove(w)

    try:
        ready = {}
        for w in list(workers):
            try:
                ready[w.name] = w.recv()
            except BenchmarkError as e:
                drop(w, e)
        rounds = math.ceil(settings.runs / settings.block) if settings.runs else None
        order = random.Random(settings.seed)
        _round(workers, settings.block, order, drop)  # warm-up: not recorded
        deadline = time.monotonic() + (settings.seconds or 0.0)
        r = 0
        while (
            (r < rounds)
            if rounds is not None
            else (r < settings.min_rounds or time.monotonic() < deadline)
        ):
            block = settings.block
            if rounds is not None and settings.runs and r == rounds - 1:
                block = settings.runs - settings.block * (rounds - 1)
            got_round = _round(workers, block, order, drop)
            medians: dict[str, float] = {}
            for name, got in got_round.items():
                samples[name].extend(got)
                medians[name] = float(sorted(got)[len(got) // 2])
            base = medians[variants[0].name]
            for name, med in medians.items():
                speedups[name].append(base / med if med > 0 else float("inf"))
            for name in failures:
                speedups.pop(name, None)
                samples.pop(name, None)
            r += 1
            if progress:
                progress(r, rounds or r)
        results = []
        for w in list(workers):
            w.send("stop")
            try:
                _, peak, _rss = w.recv()
            except BenchmarkError as e:
                drop(w, e)
                continue
            _, compile_s, size, rss0 = ready[w.name]
            variant = next(v for v in variants if v.name == w.name)
            results.append(
                BenchmarkResult(
                    name=w.name,
                    backend=variant.backend,
                    model=variant.model,
                    options=dict(variant.options),
                    samples_ms=tuple(samples[w.name]),
                    warmup=settings.warmup,
                    compile_s=compile_s,
                    peak_rss_mb=peak,
                    model_rss_mb=max(peak - rss0, 0.0),
                    model_size_bytes=size,
                )
            )
    finally:
        for w in workers:
            w.close()
    return Comparison(
        results=tuple(results),
        speedups={k: tuple(v) for k, v in speedups.items() if k not in failures},
        block=settings.block,
        environment=environment(),
        failures=failures,
    )
