"""``edgeopt compile MODEL -b BACKEND [-O key=value] [--tune 10m] [--target T] -o DIR``.

Compiles a model for a backend and writes a self-describing artifact folder
(`edgeopt.backends.saved`) that ``edgeopt bench``, ``edgeopt info``, ``bgremove --model`` and
``edgeopt.load_compiled`` accept. TVM tunes with MetaSchedule for ``--tune`` (its tuning
database under the cache folder is reused by later runs) and cross-compiles for ``--target``
(the library is checked to be an ELF for that machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgeopt._api import compile_to, load
from edgeopt.backends.saved import elf_machine, read_saved
from edgeopt.cli import _interface
from edgeopt.cli._grammar import DURATION, parse_duration
from edgeopt.cli._options import TARGETS, backend_options, parse_target
from edgeopt.cli._output import JSON, emit_json, human, steps
from edgeopt.errors import ConfigError
from edgeopt.registry import backend_names

__all__ = ["compile_model"]


def compile_model(
    model: str = typer.Argument(..., help="Model: a zoo name, .onnx, .tflite, .pt2."),
    backend: str = typer.Option(..., "--backend", "-b", help="Backend (see `edgeopt list`)."),
    output: Path = typer.Option(..., "--output", "-o", help="Artifact folder to write."),
    option: list[str] = typer.Option(
        [], "--option", "-O", help="Backend option key=value (see `edgeopt list --options B`)."
    ),
    tune: str | None = typer.Option(
        None,
        "--tune",
        metavar=DURATION,
        help="TVM: MetaSchedule tuning budget, e.g. 10m (tune_seconds).",
    ),
    target: str | None = typer.Option(
        None,
        "--target",
        help=f"TVM: host (default), {', '.join(TARGETS)}, or 'llvm -mtriple=... -mcpu=...'.",
    ),
    shape: list[str] = _interface.SHAPE,
    json_out: str | None = JSON,
) -> None:
    """Compile MODEL for BACKEND and write a deployable, self-describing artifact folder."""
    options = backend_options(option, backend, backend_names())
    if tune is not None:
        if backend != "tvm":
            raise ConfigError("--tune tunes TVM kernels; give -b tvm (other backends do not tune)")
        options["tune_seconds"] = parse_duration(tune)
    cross = parse_target(target)
    if cross is not None:
        if backend != "tvm":
            raise ConfigError("--target cross-compiles with TVM; give -b tvm")
        options["target"] = cross
    with steps(f"compiling for {backend}" + (" (tuning)" if tune else "")) as note:
        note(f"{model} -> {output}" + (f", tuning for {tune}" if tune else ""))
        folder = compile_to(load(model, _interface.shapes(shape)), backend, options, output)
    meta = read_saved(folder)
    emit_json(json_out, json.dumps(meta, indent=2))
    console = human(json_out)
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    console.print(f"wrote {folder}: {', '.join(files)}")
    tuning = meta.get("tuning")
    if tuning:
        console.print(
            f"tuned: {tuning['trials']} trials over {tuning['tasks_tuned']} of {tuning['tasks']} "
            f"kernels in {tuning['seconds']:.0f} s (database {tuning['database']})"
        )
        if tuning["tasks_tuned"] and tuning["trials"] < 4 * tuning["tasks_tuned"]:
            console.print(
                f"warning: fewer than 4 trials per kernel ({tuning['trials']} for "
                f"{tuning['tasks_tuned']}): the machine was busy or the budget short; most "
                "kernels keep TVM's untuned loops. Tune again on a quiet machine or with a "
                "longer --tune (the database keeps what was found)"
            )
    library = next((folder / f for f in files if f in ("model.so", "model.tar")), None)
    if library is not None:
        machine = elf_machine(library)
        want = str((cross or {}).get("mtriple", meta["machine"])).split("-")[0]
        if cross is not None and machine != want:
            raise ConfigError(f"{library} was built for {machine}, not {want}")
        console.print(f"{library.name}: ELF for {machine}")
