"""Fault injection: full disks, unwritable paths, output == input, signals, damaged caches.

After each fault the previous good output is intact, the command says what failed in one
line with a non-zero exit code, and the next run succeeds. The disk-full cases run the
command inside a private mount namespace with a small tmpfs (``unshare``); where this machine
cannot make one they are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from edgeopt._fs import atomic_write_text, read_verified, record_sha256, temporary_path
from edgeopt.apps.background.portrait_clip import write_sample
from edgeopt.cli.main import app

EDGEOPT = [sys.executable, "-m", "edgeopt"]


def _frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    return n


def _one_error_line(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, output
    assert "Traceback" not in output, output
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 30-frame 160x120 sample clip."""
    return write_sample(tmp_path_factory.mktemp("clip") / "in.mp4", (120, 160), 1.0)


def _can_unshare() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
        capture_output=True,
        text=True,
    )
    return None if probe.returncode == 0 else f"no private tmpfs here: {probe.stderr.strip()}"


def test_full_disk_keeps_the_good_video_and_exits_1(
    clip: Path, tmp_path: Path, red_model: Path
) -> None:
    why = _can_unshare()
    if why:
        pytest.skip(why)
    good = tmp_path / "good.mp4"
    assert (
        CliRunner()
        .invoke(app, ["bgremove", str(clip), "-o", str(good), "--model", str(red_model)])
        .exit_code
        == 0
    )
    big = write_sample(tmp_path / "big.mp4", (480, 640), 2.0)  # far more than the tmpfs holds
    disk = tmp_path / "disk"
    disk.mkdir()
    size_kb = good.stat().st_size // 1024 + 24
    script = (
        f"mount -t tmpfs -o size={size_kb}k tmpfs {disk} && cp {good} {disk}/out.mp4 && "
        f"{' '.join(EDGEOPT)} bgremove {big} -o {disk}/out.mp4 --model {red_model}; "
        f"echo $? > {tmp_path}/rc; cmp {good} {disk}/out.mp4 && echo same > {tmp_path}/cmp; "
        f"ls -A {disk} > {tmp_path}/ls"
    )
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True)
    assert (tmp_path / "rc").read_text().strip() == "1", proc.stdout + proc.stderr
    assert (tmp_path / "cmp").read_text().strip() == "same"  # the good file was kept
    assert (tmp_path / "ls").read_text().split() == ["out.mp4"]  # no temporary left
    line = _one_error_line(proc.stderr)
    assert "writing the video failed" in line and "free some disk space" in line


def test_full_disk_on_convert_keeps_the_old_model(tmp_path: Path, models_dir: Path) -> None:
    why = _can_unshare()
    if why:
        pytest.skip(why)
    src = models_dir / "mediapipe-selfie" / "selfie_segmentation.tflite"
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (
        f"mount -t tmpfs -o size=300k tmpfs {disk} && echo old > {disk}/m.onnx && "
        f"{' '.join(EDGEOPT)} convert {src} -o {disk}/m.onnx; echo $? > {tmp_path}/rc; "
        f"cat {disk}/m.onnx > {tmp_path}/content; ls -A {disk} > {tmp_path}/ls"
    )
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True)
    assert (tmp_path / "rc").read_text().strip() == "1", proc.stdout + proc.stderr
    assert (tmp_path / "content").read_text() == "old\n"
    assert (tmp_path / "ls").read_text().split() == ["m.onnx"]
    line = _one_error_line(proc.stderr)
    assert "No space left on device" in line and "free some disk space" in line


def test_output_equal_to_input_is_refused(clip: Path, tmp_path: Path, red_model: Path) -> None:
    same = tmp_path / "same.mp4"
    shutil.copyfile(clip, same)
    link = tmp_path / "link.mp4"
    link.symlink_to(same)
    before = same.read_bytes()
    for out in (same, link):
        result = CliRunner().invoke(
            app, ["bgremove", str(same), "-o", str(out), "--model", str(red_model)]
        )
        assert result.exit_code == 1
        assert "the output is the input file" in _one_error_line(result.output)
    assert same.read_bytes() == before


def test_convert_onto_its_source_is_refused(tmp_path: Path, models_dir: Path) -> None:
    src = tmp_path / "m.tflite"
    shutil.copyfile(models_dir / "mediapipe-selfie" / "selfie_segmentation.tflite", src)
    before = src.read_bytes()
    result = CliRunner().invoke(app, ["convert", str(src), "-o", str(src)])
    assert result.exit_code == 1
    assert "the output is the input file" in _one_error_line(result.output)
    assert src.read_bytes() == before


@pytest.mark.parametrize(
    "argv",
    [
        ["convert", "{model}", "-o", "{blocked}/m.onnx"],
        ["optimize", "{model}", "-o", "{blocked}/out", "--simplify"],
        ["bgremove", "{clip}", "-o", "{blocked}/o.mp4", "--model", "{model}"],
    ],
    ids=["convert", "optimize", "bgremove"],
)
def test_unwritable_outputs_are_one_line(
    argv: list[str], clip: Path, tmp_path: Path, red_model: Path
) -> None:
    blocked = tmp_path / "a-file"  # a file where a folder should be: fails even for root
    blocked.write_text("x")
    args = [a.format(model=red_model, blocked=blocked, clip=clip) for a in argv]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    line = _one_error_line(result.output)
    assert str(blocked) in line and "a file is in the way of a folder" in line, line


def test_models_pull_with_an_unwritable_cache_is_one_line(tmp_path: Path, models_dir: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    env = {**os.environ, "EDGEOPT_CACHE_DIR": str(blocked / "cache")}
    proc = subprocess.run(
        [*EDGEOPT, "models", "pull", "mediapipe-selfie"],
        capture_output=True,
        text=True,
        env={**env, "EDGEOPT_MODELS_DIR": str(models_dir)},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert str(blocked) in _one_error_line(proc.stderr)


def test_non_utf8_recipe_is_one_line(tmp_path: Path, red_model: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_bytes("passes:\n  - name: simplify  # caf\xe9\n".encode("latin-1"))
    result = CliRunner().invoke(
        app, ["optimize", str(red_model), "-o", str(tmp_path / "o"), "--recipe", str(recipe)]
    )
    assert result.exit_code == 1
    assert "UTF-8" in _one_error_line(result.output)


def test_huge_input_shape_is_one_line(make_model: object, tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    from _helpers import save_model

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "huge",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 100_000, 100_000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 100_000, 100_000])],
    )
    path = save_model(graph, tmp_path / "huge.onnx")
    result = CliRunner().invoke(app, ["bench", str(path), "--seconds", "1"])
    assert result.exit_code == 1
    assert "memory" in _one_error_line(result.output)


def _wait_for(predicate: object, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_keeps_a_playable_output_of_the_frames_done(
    tmp_path: Path, red_model: Path, sig: int, code: int
) -> None:
    long = write_sample(tmp_path / "long.mp4", (240, 320), 80.0)  # 2400 frames: seconds of work
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [*EDGEOPT, "bgremove", str(long), "-o", str(out), "--model", str(red_model)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for(lambda: any(p.name.startswith(".out.mp4.") for p in tmp_path.iterdir()))
    time.sleep(0.2)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stdout + stderr
    done = _frames(out)
    assert 0 < done < 2400
    assert f"{done} frames in, {done} out" in stdout, stdout
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_stale_temporaries_of_killed_runs_are_removed(
    clip: Path, tmp_path: Path, red_model: Path
) -> None:
    out = tmp_path / "out.mp4"
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    stale = tmp_path / f".out.mp4.edgeopt-{dead.pid}-abc.mp4"
    stale.write_bytes(b"half a video")
    mine = temporary_path(out)  # this process's own, in use: kept
    result = CliRunner().invoke(
        app, ["bgremove", str(clip), "-o", str(out), "--model", str(red_model)]
    )
    assert result.exit_code == 0, result.output
    assert not stale.exists() and mine.exists()
    assert _frames(out) == 30


def test_kill_during_optimize_leaves_no_temporaries(tmp_path: Path, models_dir: Path) -> None:
    env = {**os.environ, "EDGEOPT_MODELS_DIR": str(models_dir)}
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [*EDGEOPT, "optimize", "mediapipe-selfie", "-o", str(out), "--prune-structured", "0.3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "EDGEOPT_CACHE_DIR": str(tmp_path / "cache")},
    )
    _wait_for(lambda: out.is_dir() and any(p.name.startswith(".steps") for p in out.iterdir()))
    time.sleep(0.3)  # the pruning pass runs for seconds: still mid-run
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stdout + stderr
    assert "terminated" in _one_error_line(stderr)
    assert list(out.iterdir()) == []


def test_files_get_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "report.json", "{}")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("damage", ["empty", "changed"])
def test_damaged_cache_entry_is_refused_and_removed(tmp_path: Path, damage: str) -> None:
    entry = tmp_path / "m.onnx"
    entry.write_bytes(b"good bytes")
    record_sha256(entry)
    assert read_verified(entry)
    entry.write_bytes(b"" if damage == "empty" else b"evil bytes")
    assert not read_verified(entry)
    assert not entry.exists()  # rebuilt by the caller next


def test_ort_layout_cache_is_verified_and_rebuilt(selfie_model: Path) -> None:
    from edgeopt.apps.background.segmenter import ort_layout_file

    first = ort_layout_file(selfie_model)
    good = first.read_bytes()
    for bad in (b"", good[:100]):
        first.write_bytes(bad)
        assert ort_layout_file(selfie_model).read_bytes() == good


def test_converted_tflite_cache_is_verified_and_rebuilt(zoo_cache: Path, models_dir: Path) -> None:
    import edgeopt

    src = models_dir / "mediapipe-selfie" / "selfie_segmentation_landscape.tflite"
    art = edgeopt.load(src)
    good = art.path.read_bytes()
    art.path.write_bytes(b"")
    again = edgeopt.load(src)
    assert again.path.read_bytes() == good
    x = np.zeros((1, 144, 256, 3), np.float32)
    assert edgeopt.compile(again).run({"input_1": x})["segment_back"].shape == (1, 144, 256, 1)


def test_tvm_artifact_naming_a_library_outside_its_folder_is_refused(tmp_path: Path) -> None:
    from edgeopt.backends.tvm import TvmBackend
    from edgeopt.errors import BackendError

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "model.so").write_bytes(b"\x7fELF not really")
    art = tmp_path / "art"
    art.mkdir()
    meta = {
        "backend": "tvm",
        "options": {},
        "inputs": [],
        "outputs": [],
        "library": "../elsewhere/model.so",
        "target": {"kind": "llvm"},
        "sha256": "0" * 64,
    }
    (art / "edgeopt-tvm.json").write_text(json.dumps(meta))
    with pytest.raises(BackendError, match="outside its folder"):
        TvmBackend().load(art)


def test_stale_folders_of_killed_runs_are_removed(tmp_path: Path) -> None:
    from edgeopt._fs import remove_stale

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f"edgeopt-pull-{dead.pid}-x"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "mediapipe.whl").write_bytes(b"35 MB, once")
    alive = tmp_path / f"edgeopt-pull-{os.getpid()}-y"
    alive.mkdir()
    other = tmp_path / "edgeopt-pull-notapid"
    other.mkdir()
    assert remove_stale(tmp_path, "edgeopt-pull-") == [stale]
    assert alive.exists() and other.exists() and not stale.exists()
