"""TVM RPC devices: a tracker's devices by key, with bounded waits, and a loopback for tests.

TVM's RPC is the established way to reach edge boards: a tracker
(``python -m tvm.exec.rpc_tracker``) hands out devices registered under a key by servers
(``python -m tvm.exec.rpc_server --tracker HOST:PORT --key KEY``) running on the boards.

What is added to TVM's client (``tvm.rpc``): bounded waits. ``connect_tracker`` retries a
refused connection for a minute and a tracker ``request`` for a key no server has blocks
forever, so the tracker is spoken to here through ``tvm.rpc.base``'s protocol helpers on a
socket with a timeout, and an unknown key or a busy device fails at once with a message that
names the tracker, the key and how to start the missing piece. Measuring on a device is
`edgeopt.bench.remote`, tuning there `edgeopt.bench.remote_tune`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgeopt.backends.tvm import TvmOptions, machine_of
from edgeopt.errors import BenchmarkError, ConfigError

__all__ = [
    "RemoteDevice",
    "connect",
    "device_target",
    "loopback_device",
    "parse_address",
    "target_for_device",
]

logger = logging.getLogger(__name__)


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


def target_for_device(session: Any, device: RemoteDevice, opts: TvmOptions) -> dict[str, Any]:
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
    if found is not None and wanted and machine_of(wanted) != machine_of(found["mtriple"]):
        raise ConfigError(
            f"target {opts.target!r} is for {machine_of(wanted)}, but device {device.key!r} at "
            f"{device.address} is {found['mtriple']}; give a target for the device"
        )
    return dict(opts.target)
