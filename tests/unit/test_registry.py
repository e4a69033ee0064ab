"""Plugin registry: names, lazy imports, clear errors."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

import edgeopt
from edgeopt.errors import PluginError
from edgeopt.registry import backend_names, get_backend


def test_builtins_listed() -> None:
    assert "onnxruntime" in backend_names()
    assert get_backend("ort").name == "onnxruntime"


def test_unknown_backend_names_known_ones() -> None:
    with pytest.raises(PluginError, match=r"unknown backend 'nope'; known backends: .*onnxruntime"):
        get_backend("nope")


def test_listing_imports_no_runtime() -> None:
    code = (
        "import sys, edgeopt\n"
        "edgeopt.backend_names(); edgeopt.pass_names()\n"
        "heavy = [m for m in ('onnxruntime', 'tvm', 'openvino', 'torch', 'matplotlib')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_api_is_what_it_says() -> None:
    for name in edgeopt.__all__:
        assert hasattr(edgeopt, name), name
    public = {
        n
        for n in dir(edgeopt)
        if not n.startswith("_") and not isinstance(getattr(edgeopt, n), types.ModuleType)
    }
    assert public - {"annotations"} <= set(edgeopt.__all__)
    assert issubclass(edgeopt.UnsupportedOpError, edgeopt.EdgeoptError)


def test_a_plugin_that_is_not_a_backend_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeopt import registry

    monkeypatch.setitem(registry.BACKENDS, "fake", "collections:OrderedDict")
    with pytest.raises(PluginError, match=r"backend 'fake' .* does not implement the Backend"):
        get_backend("fake")


def test_passes_come_back_as_passes() -> None:
    from edgeopt.passes.base import Pass
    from edgeopt.registry import get_pass, pass_names

    for name in pass_names():
        impl = get_pass(name)
        assert isinstance(impl, Pass) and impl.name == name
        assert impl.options_type.model_fields  # every pass says what options it takes
