"""Report rendering: the Markdown table helper, and `markdown` built on it."""

from __future__ import annotations

import pytest

from edgeopt.bench import BenchmarkResult, Comparison
from edgeopt.bench.report import markdown, markdown_table


def test_markdown_table_exact() -> None:
    got = markdown_table(["name", "ms"], [["a", "1.50"], ["b", "12.00"]])
    assert got == "| name | ms |\n|---|---|\n| a | 1.50 |\n| b | 12.00 |"


def test_markdown_table_aligns_and_escapes() -> None:
    got = markdown_table(
        ["variant", "p50 ms"],
        [("int8 | conv-only", "0.91"), ("failed:\nno such file", "-")],
        align=["l", "r"],
    )
    assert got == (
        "| variant | p50 ms |\n"
        "|:---|---:|\n"
        "| int8 \\| conv-only | 0.91 |\n"
        "| failed: no such file | - |"
    )
    assert markdown_table(["a|b"], []) == "| a\\|b |\n|---|"


def test_markdown_table_refuses_ragged_input() -> None:
    with pytest.raises(ValueError, match="row 1 has 1 cells for 2 columns"):
        markdown_table(["a", "b"], [["1", "2"], ["3"]])
    with pytest.raises(ValueError, match="align has 1 entries for 2 columns"):
        markdown_table(["a", "b"], [], align=["l"])
    with pytest.raises(ValueError, match="alignment must be 'l' or 'r', not 'c'"):
        markdown_table(["a", "b"], [], align=["l", "c"])


def _result(name: str, samples: tuple[float, ...]) -> BenchmarkResult:
    return BenchmarkResult(
        name=name,
        backend="onnxruntime",
        model="m.onnx",
        options={"threads": 1},
        samples_ms=samples,
        warmup=2,
        compile_s=0.1,
        peak_rss_mb=50.0,
        model_rss_mb=5.0,
        model_size_bytes=2048,
    )


def test_markdown_of_a_comparison_exact() -> None:
    comparison = Comparison(
        results=(_result("all", (1.0, 2.0, 3.0)), _result("disable", (2.0, 4.0, 6.0))),
        speedups={"all": (1.0, 1.0, 1.0), "disable": (0.5, 0.5, 0.5)},
        block=10,
        failures={"tvm": "tvm is not installed"},
    )
    header = (
        "| variant | backend | threads | p50 ms | p90 ms | p99 ms | max ms | mean ms | stdev ms "
        "| inf/s | speed-up | peak MB | size KB |"
    )
    assert markdown(comparison) == "\n".join(
        [
            header,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
            "| all | onnxruntime | 1 | 2.000 | 2.800 | 2.980 | 3.000 | 2.000 | 1.000 | 500.0 "
            "| 1.00x [1.00-1.00] | 50 | 2.0 |",
            "| disable | onnxruntime | 1 | 4.000 | 5.600 | 5.960 | 6.000 | 4.000 | 2.000 | 250.0 "
            "| 0.50x [0.50-0.50] | 50 | 2.0 |",
            "| tvm | failed | tvm is not installed | - | - | - | - | - | - | - | - | - | - |",
            "",
            "Speed-up: median over rounds of 'all''s median latency / the variant's, [p10-p90]; "
            "10 calls per variant per round, interleaved, one process per variant.",
            "",
        ]
    )
