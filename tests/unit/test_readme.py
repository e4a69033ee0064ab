"""The README's Python example runs as written (a script, as a user would paste it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _helpers import ROOT


def test_readme_python_blocks_run(models_dir: Path, tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks, "the README has no Python example"
    for i, code in enumerate(blocks):
        script = tmp_path / f"example{i}.py"
        script.write_text(code)
        env = {**os.environ, "EDGEOPT_MODELS_DIR": str(models_dir)}
        env["EDGEOPT_CACHE_DIR"] = str(tmp_path / "cache")
        proc = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"README Python block {i} failed:\n{proc.stderr[-2000:]}")
        assert re.search(r"\(\d+\.\d+, \d+\.\d+, \d+\.\d+\)", proc.stdout), proc.stdout
