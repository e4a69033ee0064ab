"""``edgeopt bgremove`` options: the mask refinements, validated before anything opens."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeopt.cli.main import app


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--refine", "bilateral"], "refine"),
        (["--min-area", "0.9"], "min_area"),
        (["--min-area", "-1"], "min_area"),
    ],
)
def test_bad_refinement_flags_are_one_line_errors(
    tmp_path: Path, flags: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["bgremove", "in.mp4", "-o", str(tmp_path / "o.mp4"), *flags])
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_refinement_flags_reach_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeopt.apps.background import app as bg_app

    seen = {}

    def fake(config: bg_app.RunConfig, progress: object) -> None:
        seen["mask"] = config.mask
        raise SystemExit(0)

    monkeypatch.setattr(bg_app, "remove_background", fake)
    args = ["bgremove", "in.mp4", "-o", str(tmp_path / "o.mp4"), "--min-area", "0.01"]
    CliRunner().invoke(app, [*args, "--refine", "guided"])
    assert seen["mask"].min_area == 0.01 and seen["mask"].refine == "guided"


def test_the_summary_counts_one_thread_runs_while_a_core_is_taken(
    red_model: Path, tmp_path: Path
) -> None:
    from _helpers import one_core_taken
    from edgeopt.apps.background.portrait_clip import write_sample

    clip = write_sample(tmp_path / "in.mkv", (480, 640), seconds=4.0)
    args = ["bgremove", str(clip), "-o", str(tmp_path / "out.mkv"), "--model", str(red_model)]
    with one_core_taken():
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "120 frames in, 120 out" in result.output
    assert "on one thread while other processes held a core" in result.output
