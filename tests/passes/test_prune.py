"""Unstructured and structured pruning, and fp16 weights, on tiny graphs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgeopt.artifact import load_onnx
from edgeopt.bench.fidelity import compare_outputs, evaluation_feeds
from edgeopt.errors import ConfigError
from edgeopt.passes.base import PassContext
from edgeopt.passes.fp16 import Fp16Pass
from edgeopt.passes.prune_structured import StructuredPrunePass, channel_spaces, count_macs
from edgeopt.passes.prune_unstructured import UnstructuredPrunePass, magnitude_prune


def _weights(path: Path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_magnitude_prune_per_layer_and_global(mobilenet_model: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(mobilenet_model))
    out, per = magnitude_prune(proto, 0.5, "layer", min_elements=64)
    assert per and all(v == pytest.approx(0.5, abs=0.02) for v in per.values())
    before, after = (
        _weights(mobilenet_model),
        {t.name: numpy_helper.to_array(t) for t in out.graph.initializer},
    )
    for name in per:  # the surviving weights are the largest ones, unchanged
        kept = after[name] != 0
        assert np.abs(before[name][kept]).min() >= np.abs(before[name][~kept]).max()
        np.testing.assert_array_equal(after[name][kept], before[name][kept])
    _, glob = magnitude_prune(proto, 0.5, "global", min_elements=64)
    assert len(set(round(v, 2) for v in glob.values())) > 1  # layers lose different fractions
    result = UnstructuredPrunePass().apply(
        load_onnx(mobilenet_model),
        PassContext(workdir=tmp_path, options={"sparsity": 0.3, "min_elements": 64}),
    )
    assert result.report["sparsity"] == pytest.approx(0.3, abs=0.02)
    skipped = UnstructuredPrunePass().apply(
        load_onnx(mobilenet_model), PassContext(workdir=tmp_path)
    )
    assert skipped.skipped is not None and "256 elements" in skipped.skipped


def test_fp16_weights_halves_and_stays_close(
    mobilenet_model: Path, run: Callable[..., np.ndarray], tmp_path: Path
) -> None:
    result = Fp16Pass().apply(
        load_onnx(mobilenet_model), PassContext(workdir=tmp_path, options={"min_elements": 1})
    )
    m = onnx.load(str(result.model.path))
    assert {t.data_type for t in m.graph.initializer} == {onnx.TensorProto.FLOAT16}
    before = sum(len(t.raw_data) for t in onnx.load(str(mobilenet_model)).graph.initializer)
    assert sum(len(t.raw_data) for t in m.graph.initializer) == before // 2
    x = np.random.default_rng(0).random((1, 3, 16, 16)).astype(np.float32)
    np.testing.assert_allclose(
        run(result.model.path, {"x": x}), run(mobilenet_model, {"x": x}), atol=2e-3
    )


def test_channel_spaces_tie_residual_and_se(mobilenet_model: Path) -> None:
    spaces = {
        tuple(sorted(p for p, _ in s.producers)): s
        for s in channel_spaces(onnx.load(str(mobilenet_model)))
    }
    # expand and the SE gate meet in the Mul; project and stem meet in the residual Add.
    assert set(spaces) == {("se_reduce",), ("expand", "se_expand"), ("project", "stem")}
    block = spaces[("expand", "se_expand")]
    assert sorted(block.consumers) == ["project", "se_reduce"]
    assert ("dw", "dw") not in block.members and any(r == "dw" for _, r in block.members)


@pytest.mark.parametrize("allocation", ["uniform", "sensitivity"])
def test_structured_prune_removes_channels_and_reconstructs(
    mobilenet_model: Path, run: Callable[..., np.ndarray], tmp_path: Path, allocation: str
) -> None:
    feeds = evaluation_feeds(mobilenet_model, "builtin", count=6, seed=2)
    opts = {
        "ratio": 0.5 if allocation == "uniform" else 0.3,
        "allocation": allocation,
        "round_to": 4,
        "min_channels": 4,
    }
    result = StructuredPrunePass().apply(
        load_onnx(mobilenet_model),
        PassContext(workdir=tmp_path / allocation, calibration=feeds, options=opts),
    )
    out = onnx.load(str(result.model.path))
    onnx.checker.check_model(out, full_check=True)
    w = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    nodes = {n.name: n for n in out.graph.node}
    expand_out = w[nodes["expand"].input[1]].shape[0]
    assert expand_out < 16 and expand_out % 4 == 0
    assert w[nodes["dw"].input[1]].shape[0] == expand_out  # depthwise follows
    assert w[nodes["se_expand"].input[1]].shape[0] == expand_out  # SE gate follows
    assert w[nodes["project"].input[1]].shape[1] == expand_out  # consumer input follows
    assert w[nodes["project"].input[1]].shape[0] == w[nodes["stem"].input[1]].shape[0]  # residual
    assert count_macs(out) < count_macs(onnx.load(str(mobilenet_model)))
    assert result.report["macs_saved"] >= 0.25
    ref = [run(mobilenet_model, f) for f in feeds]
    got = [run(result.model.path, f) for f in feeds]
    assert got[0].shape == ref[0].shape
    # Reconstruction: refitting beats plain removal on the same channels.
    plain = StructuredPrunePass().apply(
        load_onnx(mobilenet_model),
        PassContext(
            workdir=tmp_path / "plain", calibration=feeds, options=opts | {"reconstruct": False}
        ),
    )
    raw = [run(plain.model.path, f) for f in feeds]
    assert compare_outputs(ref, got).mean_abs < compare_outputs(ref, raw).mean_abs


def test_structured_prune_needs_calibration(mobilenet_model: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs calibration feeds"):
        StructuredPrunePass().apply(load_onnx(mobilenet_model), PassContext(workdir=tmp_path))
    r = StructuredPrunePass().apply(
        load_onnx(mobilenet_model),
        PassContext(
            workdir=tmp_path,
            options={
                "ratio": 0.0,
                "criterion": "l1",
                "allocation": "uniform",
                "reconstruct": False,
            },
        ),
    )
    assert r.skipped == "ratio is 0"


def test_downstream_refit_and_few_row_convs(
    mobilenet_model: Path, run: Callable[..., np.ndarray], tmp_path: Path
) -> None:
    feeds = evaluation_feeds(mobilenet_model, "builtin", count=6, seed=2)
    # min_channels 5: only the expand space (16 -> 8) is pruned, so its consumers are project
    # and se_reduce, and the downstream scope adds the head conv.
    opts = {"ratio": 0.5, "allocation": "uniform", "round_to": 4, "min_channels": 5}
    ref = [run(mobilenet_model, f) for f in feeds]
    original = {
        t.name: numpy_helper.to_array(t) for t in onnx.load(str(mobilenet_model)).graph.initializer
    }
    errors = {}
    for scope in ("consumers", "downstream"):
        result = StructuredPrunePass().apply(
            load_onnx(mobilenet_model),
            PassContext(
                workdir=tmp_path / scope, calibration=feeds, options=opts | {"scope": scope}
            ),
        )
        errors[scope] = compare_outputs(ref, [run(result.model.path, f) for f in feeds]).mean_abs
        out = onnx.load(str(result.model.path))
        w = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
        se = next(n for n in out.graph.node if n.name == "se_reduce").input[1]
        # se_reduce reads a global pool: one row per frame, too few to refit its weights, so
        # they are the original's kept columns (only its bias moved).
        cols = [
            j
            for j in range(16)
            if any(np.allclose(w[se][:, i], original[se][:, j]) for i in range(8))
        ]
        assert w[se].shape == (4, 8, 1, 1) and len(cols) == 8
        assert w[next(n for n in out.graph.node if n.name == "project").input[1]].shape[0] == 8
        head = next(n for n in out.graph.node if n.name == "head").input[1]
        assert np.array_equal(w[head], original[head]) == (scope == "consumers")
    # Here the consumers' refits already fix nearly everything; refitting the head as well
    # keeps that (on MediaPipe selfie it is what brings the held-out IoU from 0.91 to 0.97).
    assert errors["downstream"] < 1.05 * errors["consumers"] < 0.01
