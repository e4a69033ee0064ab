"""Safe ONNX loading: interface reading, and every refusal with its message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.artifact import TensorSpec, load_onnx, model_summary
from edgeopt.errors import ModelLoadError, UnsafeModelError


def test_reads_static_interface(conv_model: Path) -> None:
    art = load_onnx(conv_model)
    assert art.inputs == (TensorSpec("x", "float32", (1, 3, 8, 8)),)
    assert art.outputs == (TensorSpec("y", "float32", (1, 4, 8, 8)),)
    assert art.metadata["opsets"] == {"ai.onnx": 17}
    assert art.size_bytes == conv_model.stat().st_size
    assert len(art.sha256()) == 64


def test_reads_dynamic_dims(dynamic_model: Path) -> None:
    (x,) = load_onnx(dynamic_model).inputs
    assert x.shape == ("batch", 4, None)
    assert not x.is_static
    assert x.concrete_shape({"batch": 3}) == (3, 4, 1)


def test_initializers_are_not_inputs(tmp_path: Path, make_model) -> None:  # type: ignore[no-untyped-def]
    w = numpy_helper.from_array(np.ones((2,), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["y"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        [w],
    )
    assert [s.name for s in load_onnx(make_model(graph)).inputs] == ["x"]


def test_summary_counts_ops_and_params(conv_model: Path) -> None:
    s = model_summary(load_onnx(conv_model))
    assert s["ops"] == {"Conv": 1, "Relu": 1}
    assert s["parameters"] == 4 * 3 * 3 * 3 + 4
    assert s["inputs"][0]["shape"] == [1, 3, 8, 8]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"nope\.onnx: no such model file"):
        load_onnx(tmp_path / "nope.onnx")


def test_a_folder_is_not_a_model_file(tmp_path: Path) -> None:
    import edgeopt

    with pytest.raises(ModelLoadError, match=r"a folder, not a model file; .*load_compiled"):
        edgeopt.load(tmp_path)


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.onnx"
    p.write_bytes(b"")
    with pytest.raises(ModelLoadError, match="0 bytes is not a plausible ONNX model size"):
        load_onnx(p)


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.95])
def test_truncated_file(conv_model: Path, cut: float) -> None:
    data = conv_model.read_bytes()
    conv_model.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ModelLoadError, match=str(conv_model.name)):
        load_onnx(conv_model)


def test_not_onnx(tmp_path: Path) -> None:
    p = tmp_path / "photo.onnx"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(ModelLoadError, match=r"not a valid ONNX model|not an ONNX model"):
        load_onnx(p)


def test_checker_rejects(make_model) -> None:  # type: ignore[no-untyped-def]
    # Relu with two inputs violates the operator schema.
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x", "x"], ["y"])],
        "bad",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    with pytest.raises(ModelLoadError, match="the onnx checker rejects this model"):
        load_onnx(make_model(graph, "bad.onnx"))


def _external_model(folder: Path, location: str, length: int = 16, offset: int = 0) -> Path:
    tensor = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        [tensor],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def test_external_data_inside_folder_loads(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(np.arange(4, dtype=np.float32).tobytes())
    art = load_onnx(_external_model(tmp_path, "weights.bin"))
    assert art.size_bytes > 16
    np.testing.assert_array_equal(
        numpy_helper.to_array(art.proto().graph.initializer[0]), np.arange(4, dtype=np.float32)
    )


@pytest.mark.parametrize("location", ["../secret.bin", "sub/../../secret.bin"])
def test_external_data_traversal_refused(tmp_path: Path, location: str) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    with pytest.raises(UnsafeModelError, match="outside the model's folder"):
        load_onnx(_external_model(model_dir, location))


def test_external_data_absolute_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafeModelError, match="absolute external-data path '/etc/passwd'"):
        load_onnx(_external_model(tmp_path, "/etc/passwd"))


def test_external_data_symlink_out_refused(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    (model_dir / "w.bin").symlink_to(tmp_path / "secret.bin")
    with pytest.raises(UnsafeModelError, match="outside the model's folder"):
        load_onnx(_external_model(model_dir, "w.bin"))


def test_external_data_missing_or_short(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"external data file 'w\.bin' is missing"):
        load_onnx(_external_model(tmp_path, "w.bin"))
    (tmp_path / "w.bin").write_bytes(b"\0" * 8)
    with pytest.raises(ModelLoadError, match=r"runs past the end of 'w\.bin'"):
        load_onnx(_external_model(tmp_path, "w.bin"))


def _external_tensor(location: str) -> onnx.TensorProto:
    tensor = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    return tensor


@pytest.mark.parametrize("where", ["tensors attribute", "function body"])
def test_external_data_traversal_refused_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "secret.bin").write_bytes(b"\0" * 16)
    bad = helper.make_node("Constant", [], ["c"])
    attr = bad.attribute.add()
    attr.name, attr.type = "value", onnx.AttributeProto.TENSOR
    attr.t.CopyFrom(_external_tensor("../secret.bin"))
    if where == "tensors attribute":
        odd = helper.make_node("Identity", ["x"], ["y"], domain="")
        a = odd.attribute.add()
        a.name, a.type = "extra", onnx.AttributeProto.TENSORS
        a.tensors.append(_external_tensor("../secret.bin"))
        nodes, functions = [odd], []
    else:
        body = onnx.FunctionProto(
            name="F",
            domain="local",
            input=[],
            output=["c"],
            node=[bad],
            opset_import=[helper.make_opsetid("", 17)],
        )
        nodes = [
            helper.make_node("F", [], ["c"], domain="local"),
            helper.make_node("Add", ["x", "c"], ["y"]),
        ]
        functions = [body]
    graph = helper.make_graph(
        nodes,
        "ext",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)],
        functions=functions,
    )
    model.ir_version = 8
    path = model_dir / "model.onnx"
    path.write_bytes(model.SerializeToString())
    monkeypatch.chdir(tmp_path)  # the verdict must not depend on the current folder
    with pytest.raises(UnsafeModelError, match="outside the model's folder"):
        load_onnx(path)
