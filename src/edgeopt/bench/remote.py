"""Remote measurement over TVM RPC: compile here, run and time on a device behind a tracker.

TVM's RPC is the established way to measure on edge boards: a tracker
(``python -m tvm.exec.rpc_tracker``) hands out devices registered under a key by servers
(``python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY``) running on the boards. This
module compiles a model with the TVM backend for the device's target (asked of the device
when it can say; a target for another architecture is saved as ``model.tar`` of object files,
which the device's server links itself), uploads the library, loads it in the Relax VM on the
device and times ``main`` there with TVM's ``time_evaluator`` (``number=1``, so each repeat is
one inference and every sample is kept). The result is edgeopt's own `Comparison`, so tables,
charts and JSON work unchanged; the device's outputs are checked against ONNX Runtime run here
on the same feeds before any number is reported.

What is added to TVM's client (``tvm.rpc``): bounded waits. ``connect_tracker`` retries a
refused connection for a minute and a tracker ``request`` for a key no server has blocks
forever, so the tracker is spoken to here through ``tvm.rpc.base``'s protocol helpers on a
socket with a timeout, and an unknown key or a busy device fails at once with a message that
names the tracker, the key and how to start the missing piece.

Tuning on the device with MetaSchedule's RPC runner is `edgeopt.bench.remote_tune`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeopt.artifact import ModelArtifact, TensorSpec, load_onnx
from edgeopt.backends.base import parse_options, random_feeds
from edgeopt.backends.tvm import TvmBackend, TvmOptions
from edgeopt.bench.environment import environment
from edgeopt.bench.harness import BenchSettings
from edgeopt.bench.result import BenchmarkResult, Comparison
from edgeopt.errors import BenchmarkError, ConfigError
from edgeopt.registry import get_backend

__all__ = [
    "RemoteDevice",
    "RemoteMeasurement",
    "connect",
    "device_target",
    "loopback_device",
    "measure_remote",
    "parse_address",
    "resolve_target",
]

log = logging.getLogger(__name__)

_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}


class RemoteDevice(BaseModel):
    """A device reached through a TVM RPC tracker."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(description="Host name or address of the RPC tracker.")
    port: int = Field(ge=1, le=65535, description="Port of the RPC tracker.")
    key: str = Field(min_length=1, description="Device key the servers registered under.")
    timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait to reach the tracker and get a free device."
    )
    session_timeout_s: float = Field(
        default=600.0, ge=0, description="The server ends a session older than this; 0: never."
    )

    @property
    def address(self) -> str:
        """``HOST:PORT`` of the tracker."""
        return f"{self.host}:{self.port}"

    def how_to_start(self) -> str:
        """The commands that start a tracker and a device server for this address and key."""
        return (
            f"start a tracker with `python -m tvm.exec.rpc_tracker --host {self.host} "
            f"--port {self.port}` and a device with `python -m tvm.exec.rpc_server --tracker "
            f"{self.address} --key {self.key}`"
        )


def parse_address(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6) into host and port.

    Raises:
        ConfigError: Not of that form, or a port outside 1-65535.
    """
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"remote address {text!r} is not HOST:PORT, e.g. 127.0.0.1:9190")
    return host, int(port)


def _tracker_call(device: RemoteDevice, message: list[Any], timeout_s: float) -> Any:
    """Send one request to the tracker on a fresh socket and wait (bounded) for its answer."""
    from tvm.rpc import base  # type: ignore[import-untyped]

    try:
        sock = socket.create_connection((device.host, device.port), timeout=device.timeout_s)
    except OSError as e:
        raise BenchmarkError(
            f"cannot reach the TVM RPC tracker at {device.address} ({e}); {device.how_to_start()}"
        ) from e
    try:
        sock.settimeout(timeout_s)
        sock.sendall(struct.pack("<i", base.RPC_TRACKER_MAGIC))
        magic = struct.unpack("<i", base.recvall(sock, 4))[0]
        if magic != base.RPC_TRACKER_MAGIC:
            raise BenchmarkError(
                f"{device.address} answered, but is not a TVM RPC tracker; {device.how_to_start()}"
            )
        base.sendjson(sock, message)
        value = base.recvjson(sock)
    except TimeoutError as e:
        raise BenchmarkError(
            f"no answer from the TVM RPC tracker at {device.address} for key {device.key!r} "
            f"within {timeout_s:g} s"
        ) from e
    except (OSError, RuntimeError, ValueError) as e:
        raise BenchmarkError(
            f"the TVM RPC tracker at {device.address} failed ({e}); {device.how_to_start()}"
        ) from e
    finally:
        sock.close()
    if not isinstance(value, list) or not value or value[0] != base.TrackerCode.SUCCESS:
        raise BenchmarkError(f"the TVM RPC tracker at {device.address} refused: {value!r}")
    return value[1]


def connect(device: RemoteDevice) -> Any:
    """Get a session on a free device with ``device.key`` from the tracker, within the timeout.

    Returns:
        A ``tvm.rpc.RPCSession``.

    Raises:
        BenchmarkError: The tracker is unreachable or not a tracker, no server registered the
            key, or none became free in time; the message says what to start.
    """
    from tvm import rpc  # type: ignore[import-untyped]
    from tvm.rpc import base

    summary = _tracker_call(device, [base.TrackerCode.SUMMARY], device.timeout_s)
    keys = sorted({str(s["key"]).split(":", 1)[-1] for s in summary.get("server_info", [])} - {""})
    if device.key not in keys:
        raise BenchmarkError(
            f"no device with key {device.key!r} is registered at the TVM RPC tracker "
            f"{device.address} (keys there: {', '.join(keys) or 'none'}); start one with "
            f"`python -m tvm.exec.rpc_server --tracker {device.address} --key {device.key}`"
        )
    try:
        url, port, matchkey = _tracker_call(
            device, [base.TrackerCode.REQUEST, device.key, "", 1], device.timeout_s
        )
    except BenchmarkError as e:
        if not isinstance(e.__cause__, TimeoutError):
            raise
        raise BenchmarkError(
            f"no device with key {device.key!r} became free at the TVM RPC tracker "
            f"{device.address} within {device.timeout_s:g} s (all busy?); wait, or start "
            f"another with `python -m tvm.exec.rpc_server --tracker {device.address} "
            f"--key {device.key}`"
        ) from e
    try:
        return rpc.connect(url, port, matchkey, device.session_timeout_s)
    except Exception as e:  # TVM raises its own FFI error types
        raise BenchmarkError(
            f"the tracker at {device.address} gave {url}:{port} for key {device.key!r}, "
            f"but its server did not accept a session: {e}"
        ) from e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(*args: str) -> subprocess.Popen[bytes]:
    # A session of its own, so stopping it also stops the workers the server forks.
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@contextmanager
def loopback_device(
    key: str = "edgeopt-loopback", timeout_s: float = 30.0
) -> Iterator[RemoteDevice]:
    """Start a TVM RPC tracker and one server on 127.0.0.1 (free ports); stop both on exit.

    For tests and for measuring this machine through the same path as a board. The tracker
    needs the ``tornado`` package.

    Args:
        key: The key the server registers under.
        timeout_s: Longest wait for the tracker to listen and the server to register.

    Raises:
        BenchmarkError: The tracker or the server did not come up in time.
    """
    host, port = "127.0.0.1", _free_port()
    device = RemoteDevice(host=host, port=port, key=key)
    ends = ("--port", str(port), "--port-end", str(port + 1), "--silent")
    procs = [_start("tvm.exec.rpc_tracker", "--host", host, *ends)]
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection((host, port), timeout=1).close()
                break
            except OSError as e:
                if procs[0].poll() is not None or time.monotonic() > deadline:
                    raise BenchmarkError(
                        f"the TVM RPC tracker on {device.address} did not start (exit code "
                        f"{procs[0].poll()}); is tornado installed?"
                    ) from e
                time.sleep(0.1)
        server = _free_port()
        procs.append(
            _start(
                "tvm.exec.rpc_server",
                "--host",
                host,
                "--port",
                str(server),
                "--port-end",
                str(server + 1),
                "--tracker",
                device.address,
                "--key",
                key,
                "--silent",
            )
        )
        from tvm.rpc import base

        while True:
            summary = _tracker_call(device, [base.TrackerCode.SUMMARY], device.timeout_s)
            if any(s["key"] == f"server:{key}" for s in summary.get("server_info", [])):
                break
            if procs[1].poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(
                    f"the TVM RPC server for key {key!r} did not register at {device.address} "
                    f"(exit code {procs[1].poll()})"
                )
            time.sleep(0.1)
        yield device
    finally:
        for proc in reversed(procs):
            _stop(proc)


def _remote_call(session: Any, name: str) -> Any:
    try:
        return session.get_function(name)()
    except Exception:  # a runtime-only device lacks LLVM's helpers: a normal case
        return None


def device_target(session: Any, threads: int | None = None) -> dict[str, Any] | None:
    """The dict-form LLVM target of the device, when its TVM can say (a full TVM with LLVM).

    Returns:
        ``{"kind": "llvm", "mtriple": ..., "mcpu": ..., "num-cores": ...}`` (``threads``, else
        the size of the device runtime's thread pool), or None for a runtime-only device.
    """
    triple = _remote_call(session, "target.llvm_get_system_triple")
    if not triple:
        return None
    target: dict[str, Any] = {"kind": "llvm", "mtriple": str(triple)}
    cpu = _remote_call(session, "target.llvm_get_system_cpu")
    if cpu and str(cpu) != "generic":
        target["mcpu"] = str(cpu)
    # The runtime's default pool size (its count of physical cores) where threads is not given:
    # MetaSchedule needs num-cores to schedule parallel loops.
    cores = threads or _remote_call(session, "runtime.NumThreads")
    if cores:
        target["num-cores"] = int(cores)
    return target


def _arch(triple: str) -> str:
    head = triple.split("-")[0]
    return _ARCH.get(head, head)


def resolve_target(session: Any, device: RemoteDevice, opts: TvmOptions) -> dict[str, Any]:
    """The dict-form target to compile for on the device: ``opts.target``, else the device's.

    Raises:
        ConfigError: A runtime-only device with no target given, or a target for another
            architecture than the device's.
    """
    found = device_target(session, opts.threads)
    if opts.target is None:
        if found is None:
            raise ConfigError(
                f"device {device.key!r} at {device.address} runs a TVM runtime without LLVM and "
                'cannot name its target; give one, e.g. {"kind": "llvm", "mtriple": '
                '"aarch64-linux-gnu", "mcpu": "cortex-a72"}'
            )
        return found
    wanted = str(opts.target.get("mtriple", ""))
    if found is not None and wanted and _arch(wanted) != _arch(found["mtriple"]):
        raise ConfigError(
            f"target {opts.target!r} is for {_arch(wanted)}, but device {device.key!r} at "
            f"{device.address} is {found['mtriple']}; give a target for the device"
        )
    return dict(opts.target)


@dataclass(frozen=True)
class RemoteMeasurement:
    """A model measured on a remote device, with its outputs checked against ONNX Runtime.

    Attributes:
        comparison: The measurement as edgeopt's benchmark data (one variant, every sample).
        target: The dict-form target the model was compiled for.
        outputs: The device's outputs, by name.
        reference: ONNX Runtime's outputs here on the same feeds.
        max_abs_error: Largest absolute difference per output.
    """

    comparison: Comparison
    target: dict[str, Any]
    outputs: dict[str, np.ndarray]
    reference: dict[str, np.ndarray]
    max_abs_error: dict[str, float]


def _library(directory: Path) -> Path:
    meta = json.loads((directory / "edgeopt-tvm.json").read_text())
    return directory / str(meta["library"])


def _run_on_device(
    session: Any,
    library: Path,
    inputs: tuple[TensorSpec, ...],
    outputs: tuple[TensorSpec, ...],
    feeds: Mapping[str, np.ndarray],
    settings: BenchSettings,
    threads: int | None,
) -> tuple[dict[str, np.ndarray], list[list[float]]]:
    """Upload, load, run once for outputs, then time in blocks; every sample in ms."""
    import tvm
    from tvm import relax

    session.upload(str(library))
    lib = session.load_module(library.name)  # the device's server links a .tar itself
    dev = session.cpu()
    if threads:
        # -3: threads float over all cores, as the TVM backend configures its local pool.
        session.get_function("runtime.config_threadpool")(-3, threads)
    vm = relax.VirtualMachine(lib, dev)
    args = [tvm.runtime.tensor(np.ascontiguousarray(feeds[s.name]), dev) for s in inputs]
    vm.set_input("main", *args)
    vm.invoke_stateful("main")
    got = vm.get_outputs("main")
    values = [got] if hasattr(got, "numpy") else list(got)
    result = {o.name: v.numpy() for o, v in zip(outputs, values, strict=True)}
    if settings.warmup:
        vm.time_evaluator("invoke_stateful", dev, number=1, repeat=settings.warmup)("main")
    timer = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=settings.block)
    rounds: list[list[float]] = []
    if settings.runs is not None:
        left = settings.runs
        while left > 0:
            block = min(settings.block, left)
            if block != settings.block:
                timer = vm.time_evaluator("invoke_stateful", dev, number=1, repeat=block)
            rounds.append([float(s) * 1e3 for s in timer("main").results])
            left -= block
    else:
        deadline = time.monotonic() + float(settings.seconds or 0.0)
        while not rounds or time.monotonic() < deadline:
            rounds.append([float(s) * 1e3 for s in timer("main").results])
    return result, rounds


def measure_remote(
    model: ModelArtifact | str | Path,
    device: RemoteDevice,
    options: TvmOptions | Mapping[str, Any] | None = None,
    settings: BenchSettings | None = None,
    *,
    rtol: float = 1e-3,
    atol: float = 1e-4,
) -> RemoteMeasurement:
    """Compile ``model`` with TVM for the device, then run and time it there.

    Args:
        model: The .onnx model (or a format `edgeopt.load` converts).
        device: The tracker address and device key.
        options: TVM backend options; the target defaults to the one the device reports.
        settings: Warm-up, runs (or seconds), block size and the feeds' seed; timed calls are
            grouped in blocks of ``block`` repeats of TVM's ``time_evaluator``.
        rtol: Relative tolerance of the check against ONNX Runtime.
        atol: Absolute tolerance of the check against ONNX Runtime.

    Returns:
        The measurement, with the device's outputs and ONNX Runtime's.

    Raises:
        BenchmarkError: No device (see `connect`), the device failed, or its outputs differ
            from ONNX Runtime's beyond the tolerance.
        ConfigError: Bad options, or a target that does not fit the device.
        BackendError: TVM failed to compile.
    """
    import tvm

    settings = settings or BenchSettings()
    artifact = model if isinstance(model, ModelArtifact) else load_onnx(model)
    backend = TvmBackend()
    opts = parse_options(TvmOptions, options, backend.name)
    feeds = random_feeds(artifact.inputs, seed=settings.seed)
    reference = get_backend("onnxruntime").compile(artifact).run(feeds)
    session = connect(device)
    target = resolve_target(session, device, opts)
    opts = opts.model_copy(update={"target": target})
    t0 = time.perf_counter()
    compiled = backend.compile(artifact, opts)
    compile_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="edgeopt-remote-") as tmp:
        library = _library(compiled.save(Path(tmp)))
        size = library.stat().st_size
        try:
            outputs, rounds = _run_on_device(
                session,
                library,
                compiled.inputs,
                compiled.outputs,
                feeds,
                settings,
                # Always configured: the device runs with the thread count it was compiled for
                # (num-cores), not whatever its runtime's default pool happens to be.
                opts.threads or target.get("num-cores"),
            )
        except Exception as e:  # TVM raises its own FFI error types, from the device
            raise BenchmarkError(
                f"device {device.key!r} at {device.address} failed running {artifact.path} "
                f"compiled for {target}: {str(e).strip().splitlines()[-1] if str(e) else e}"
            ) from e
    errors = {}
    for name, want in reference.items():
        got = outputs[name]
        errors[name] = float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0))
        if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=atol):
            raise BenchmarkError(
                f"device {device.key!r} at {device.address}: output {name!r} of "
                f"{artifact.path} differs from ONNX Runtime's (max abs error {errors[name]:.3g}, "
                f"shape {got.shape} vs {want.shape}; tolerance rtol={rtol}, atol={atol}); check "
                "the target and the device's TVM runtime version"
            )
    name = f"tvm@{device.key}" + (f"-{opts.threads}t" if opts.threads else "")
    result = BenchmarkResult(
        name=name,
        backend="tvm",
        model=str(artifact.path),
        options=opts.model_dump(mode="json", exclude_defaults=True),
        samples_ms=tuple(s for block in rounds for s in block),
        warmup=settings.warmup,
        compile_s=compile_s,
        peak_rss_mb=float("nan"),  # the device's memory is not observable over RPC
        model_rss_mb=float("nan"),
        model_size_bytes=size,
    )
    remote = {
        "tracker": device.address,
        "key": device.key,
        "target": target,
        "max_abs_error": errors,
        "checked_against": "onnxruntime",
    }
    env: dict[str, Any] = {
        "cpu": f"{device.key} ({target.get('mcpu', target.get('mtriple', 'unknown'))}, remote)",
        "cpu_flags": [],
        "usable_cores": opts.threads,
        "machine": _arch(str(target.get("mtriple", ""))) or None,
        "versions": {"tvm (compiler)": str(tvm.__version__)},
        "remote": remote,
        "host": environment(),
    }
    comparison = Comparison(
        results=(result,),
        speedups={name: tuple(1.0 for _ in rounds)},
        block=settings.block,
        environment=env,
    )
    return RemoteMeasurement(comparison, target, outputs, reference, errors)
