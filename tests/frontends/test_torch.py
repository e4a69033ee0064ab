"""PyTorch import: modules, TorchScript and ExportedProgram files, to ONNX with equal outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import edgeopt
from edgeopt.cli.main import app
from edgeopt.errors import ConfigError, ModelLoadError

torch = pytest.importorskip(
    "torch", reason="torch is the optional extra: pip install torch==2.13.0"
)


class SmallNet(torch.nn.Module):  # type: ignore[misc]
    """Conv + BN + hard-swish + depthwise conv + global pool: the MobileNet pieces."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.nn.functional.hardswish(self.bn(self.conv(x)))
        return self.dw(y) * torch.sigmoid(y.mean(dim=(2, 3), keepdim=True))


@pytest.fixture(scope="module")
def net() -> SmallNet:
    torch.manual_seed(0)
    model = SmallNet().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    return model


def _check_same(net: SmallNet, path: Path) -> None:
    x = np.random.default_rng(0).random((1, 3, 16, 16), dtype=np.float32)
    art = edgeopt.load(path)
    got = edgeopt.compile(art).run({art.inputs[0].name: x})[art.outputs[0].name]
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_module(net: SmallNet, tmp_path: Path) -> None:
    from edgeopt.frontends.torch import convert_torch

    path = convert_torch(net, tmp_path / "m.onnx", [(1, 3, 16, 16)])
    _check_same(net, path)


def test_torchscript_file_via_cli(net: SmallNet, tmp_path: Path) -> None:
    torch.jit.trace(net, torch.zeros(1, 3, 16, 16)).save(str(tmp_path / "m.pt"))
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(
        app, ["convert", str(tmp_path / "m.pt"), "-o", str(out), "--input-shape", "1,3,16,16"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output
    _check_same(net, out)


def test_exported_program_file(net: SmallNet, tmp_path: Path) -> None:
    from edgeopt.convert import convert

    ep = torch.export.export(net, (torch.zeros(1, 3, 16, 16),))
    torch.export.save(ep, str(tmp_path / "m.pt2"))
    art = convert(tmp_path / "m.pt2", tmp_path / "m.onnx", input_shapes=[(1, 3, 16, 16)])
    _check_same(net, art.path)


def test_errors(tmp_path: Path) -> None:
    from edgeopt.convert import convert

    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x04not a torchscript archive")
    with pytest.raises(ModelLoadError, match=r"bad\.pt: not a TorchScript"):
        convert(bad, tmp_path / "o.onnx", input_shapes=[(1, 3, 8, 8)])
    assert not (tmp_path / "o.onnx").exists()
    with pytest.raises(ConfigError, match="PyTorch files carry no input shape"):
        convert(bad, tmp_path / "o.onnx")
    with pytest.raises(ConfigError, match=r"unknown model format '\.h5'"):
        (tmp_path / "m.h5").write_bytes(b"x")
        convert(tmp_path / "m.h5", tmp_path / "o.onnx")


class _Payload:
    """Unpickling this runs ``touch MARKER``: the attack a hostile .pt2 carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return (os.system, (f"touch {self.marker}",))


def _hostile_pt2(net: SmallNet, tmp_path: Path, how: str) -> tuple[Path, Path]:
    """A real ExportedProgram archive turned hostile ``how``; returns (archive, marker).

    ``use_pickle``: conv.weight's config entry says pickled, its file is a torch.save'd
    object whose unpickling runs a command. ``sample_inputs``: the sample inputs are one.
    """
    import io
    import json
    import zipfile

    marker = tmp_path / f"pwned-{how}"
    good = tmp_path / "good.pt2"
    torch.export.save(torch.export.export(net, (torch.zeros(1, 3, 8, 8),)), str(good))
    buf = io.BytesIO()
    torch.save(_Payload(marker), buf)
    payload = buf.getvalue()
    with zipfile.ZipFile(good) as src:
        items = {i.filename: src.read(i.filename) for i in src.infolist()}
    target = ""
    for name, data in items.items():
        if how == "use_pickle" and name.endswith("model_weights_config.json"):
            config = json.loads(data)
            config["config"]["conv.weight"]["use_pickle"] = True
            items[name] = json.dumps(config).encode()
            target = "/data/weights/" + config["config"]["conv.weight"]["path_name"]
        if how == "sample_inputs" and "/data/sample_inputs/" in name:
            target = name
    for name in items:
        if name.endswith(target):
            items[name] = payload
    evil = tmp_path / f"evil-{how}.pt2"
    with zipfile.ZipFile(evil, "w") as dst:
        for name, data in items.items():
            dst.writestr(name, data)
    return evil, marker


@pytest.mark.parametrize("how", ["use_pickle", "sample_inputs"])
def test_pt2_with_pickled_code_is_refused_before_torch_runs_it(
    net: SmallNet, tmp_path: Path, how: str
) -> None:
    evil, marker = _hostile_pt2(net, tmp_path, how)
    out = tmp_path / "x.onnx"
    result = CliRunner().invoke(
        app, ["convert", str(evil), "-o", str(out), "--input-shape", "1,3,8,8"]
    )
    assert not marker.exists(), "the pickle's code ran"
    assert result.exit_code == 1
    assert "pickle" in result.output and str(evil) in result.output.replace("\n", "")
    assert not out.exists()
