"""Benchmark harness: worker processes, interleaving, statistics, JSON, Markdown, chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeopt.bench import BenchSettings, Comparison, Stats, Variant, compare
from edgeopt.bench.report import markdown, rows, save_chart
from edgeopt.errors import BenchmarkError, ConfigError, ModelLoadError


def test_stats_of_known_samples() -> None:
    s = Stats.of([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (s.count, s.p50, s.min, s.max, s.mean) == (5, 3.0, 1.0, 100.0, 22.0)
    assert s.p90 == pytest.approx(61.6)
    assert s.stdev == pytest.approx(np.std([1, 2, 3, 4, 100], ddof=1))
    assert s.throughput == pytest.approx(1000 / 22)


@pytest.fixture(scope="module")
def comparison(tmp_path_factory: pytest.TempPathFactory) -> Comparison:
    from onnx import TensorProto, helper, numpy_helper

    from _helpers import conv_weights, save_model

    w, b = conv_weights()
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 32, 32])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    path = str(save_model(graph, tmp_path_factory.mktemp("m") / "conv.onnx"))
    variants = [
        Variant(name="all", model=path, options={"threads": 1}),
        Variant(name="disable", model=path, options={"threads": 1, "optimization": "disable"}),
    ]
    seen: list[tuple[int, int]] = []
    result = compare(
        variants,
        BenchSettings(warmup=2, runs=25, block=10),
        progress=lambda d, t: seen.append((d, t)),
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
    return result


def test_every_sample_kept_and_interleaved(comparison: Comparison) -> None:
    assert [r.name for r in comparison.results] == ["all", "disable"]
    for r in comparison.results:
        assert len(r.samples_ms) == 25
        assert all(s > 0 for s in r.samples_ms)
        assert r.peak_rss_mb > 20 and r.model_size_bytes > 400 and r.compile_s > 0
    # one speed-up per round (3 rounds: 10 + 10 + 5 calls), the baseline's exactly 1
    assert comparison.speedups["all"] == (1.0, 1.0, 1.0)
    assert len(comparison.speedups["disable"]) == 3
    assert comparison.environment["usable_cores"] >= 1
    assert "onnxruntime" in comparison.environment["versions"]


def test_json_round_trip(comparison: Comparison) -> None:
    back = Comparison.from_json(comparison.to_json())
    assert back == comparison
    assert back.result("disable").stats == comparison.result("disable").stats
    with pytest.raises(ValueError, match="not an edgeopt benchmark file"):
        Comparison.from_json('{"schema": "other"}')


def test_markdown_and_chart(comparison: Comparison, tmp_path: Path) -> None:
    import matplotlib.image

    md = markdown(comparison)
    lines = md.splitlines()
    assert lines[0].startswith("| variant | backend | threads | p50 ms | p90 ms | p99 ms")
    assert lines[2].startswith("| all | onnxruntime | 1 |") and "1.00x" in lines[2]
    assert lines[3].startswith("| disable | onnxruntime | 1 |")
    png = save_chart(comparison, tmp_path / "chart.png")
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 400
    assert image.std() > 0.05  # bars and text drawn, not a blank canvas


def test_time_budget(conv_model: Path) -> None:
    v = Variant(name="a", model=str(conv_model))
    r = compare([v], BenchSettings(warmup=1, runs=None, seconds=0.3, block=5, min_rounds=4))
    assert len(r.results[0].samples_ms) >= 4 * 5  # at least min_rounds, past the time
    assert len(r.results[0].samples_ms) % 5 == 0


def test_a_workers_peak_memory_is_its_own_not_its_parents(conv_model: Path) -> None:
    import numpy as np

    ballast = np.ones(1024 * 2**20 // 8)  # 1 GiB touched in the parent before the spawn
    v = Variant(name="a", model=str(conv_model), options={"threads": 1})
    r = compare([v], BenchSettings(warmup=1, runs=5, block=5))
    assert 20 < r.results[0].peak_rss_mb < 600, r.results[0].peak_rss_mb
    assert ballast[-1] == 1.0


def test_errors_before_spawning(conv_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to benchmark"):
        compare([])
    v = Variant(name="a", model=str(conv_model))
    with pytest.raises(ConfigError, match="variant names must be unique"):
        compare([v, v])
    with pytest.raises(ModelLoadError, match="no such model file"):
        compare([Variant(name="a", model=str(tmp_path / "x.onnx"))])
    with pytest.raises(ConfigError, match="bad options for backend 'onnxruntime': threads"):
        compare([Variant(name="a", model=str(conv_model), options={"threads": -1})])
    with pytest.raises(ValueError, match="give either runs or seconds"):
        BenchSettings(runs=None, seconds=None)


def test_worker_failure_is_reported(dynamic_model: Path) -> None:
    # ORT accepts the model; the worker's run fails on an unsupported provider at compile time.
    v = Variant(
        name="bad",
        model=str(dynamic_model),
        options={"providers": ["NoSuchProvider"]},
        shapes={"x": [1, 4, 3]},
    )
    with pytest.raises(BenchmarkError, match=r"baseline could not be measured: .*BackendError"):
        compare([v], BenchSettings(warmup=0, runs=1))


def test_a_failing_variant_is_a_failed_row_and_the_others_are_measured(
    conv_model: Path, dynamic_model: Path
) -> None:
    bad = Variant(
        name="bad",
        model=str(dynamic_model),
        options={"providers": ["NoSuchProvider"]},
        shapes={"x": [2, 4, 3]},
    )
    good = Variant(name="ort-1t", model=str(conv_model), options={"threads": 1})
    base = Variant(name="base", model=str(conv_model))
    result = compare([base, bad, good], BenchSettings(warmup=1, runs=20, block=5))
    assert [r.name for r in result.results] == ["base", "ort-1t"]
    assert len(result.result("ort-1t").samples_ms) == 20 and "bad" not in result.speedups
    assert "variant 'bad' failed: BackendError" in result.failures["bad"]
    table = rows(result)
    assert table[-1][:2] == ("bad", "failed") and "BackendError" in table[-1][2]
    again = Comparison.from_json(result.to_json())
    assert again.failures == result.failures


def test_dynamic_dimensions_need_a_shape(dynamic_model: Path) -> None:
    """A model with a dynamic dimension is never silently run at size 1."""
    with pytest.raises(ConfigError, match=r"input 'x' has a dynamic dimension \(batch at axis 0"):
        compare([Variant(name="a", model=str(dynamic_model))], BenchSettings(runs=1))
    with pytest.raises(ConfigError, match=r"--shape x=1x5x3 does not fit"):
        compare([Variant(name="a", model=str(dynamic_model), shapes={"x": [1, 5, 3]})])
    ok = compare(
        [Variant(name="a", model=str(dynamic_model), shapes={"x": [3, 4, 7]})],
        BenchSettings(warmup=0, runs=2, block=1),
    )
    assert len(ok.result("a").samples_ms) == 2
