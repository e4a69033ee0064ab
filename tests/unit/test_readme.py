"""The README's Python examples run as written (scripts, as a user would paste them), and print
what they say they print."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from _helpers import ROOT

EXPECTED = [
    r"\(\d+\.\d+, \d+\.\d+, \d+\.\d+\)",  # compare: a speed-up's median, p10, p90
    r"\S+@onnxruntime-2t \d+\.\d+ 1\.0+\n|baseline: ORT fp32 1\.0 1\.0",  # auto: a winner, exact
    r"\niou (1\.0|0\.9[89]\d*)\n",  # optimize fp16: IoU against fp32 on held-out frames
    r"\(720, 1280, 3\) ([1-9]\d)% person",  # the frame API: a blurred frame, a real mask
]
"""What each Python block of the README prints, in order."""


def test_readme_python_blocks_run(models_dir: Path, tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 3, "the README's Python examples changed: update EXPECTED"
    outputs = []
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
        outputs.append(proc.stdout)
    text = "\n".join(outputs)
    for pattern in EXPECTED:
        assert re.search(pattern, text), (pattern, text)
