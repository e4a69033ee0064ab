"""One measured variant's process, spoken to over a pipe (the harness and the stage benchmark).

Each variant runs in its own process so its runtime's threads, memory and allocator state are
its own (per-variant peak memory is the worker's, not the parent's). Messages are tuples; a
child reports a failure as ``("error", message, traceback)``, which the parent raises as a
`BenchmarkError` naming the variant. A worker that does not answer within ``timeout_s`` or dies
is an error too, never a hang.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from edgeopt.errors import BenchmarkError

__all__ = ["Worker"]


class Worker:
    """A child process running ``target(conn, *args)`` for the variant ``name``."""

    def __init__(
        self,
        ctx: Any,
        name: str,
        target: Callable[..., None],
        args: tuple[Any, ...],
        timeout_s: float,
    ) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=target, args=(child, *args), daemon=True, name=f"edgeopt-{name}"
        )
        self.proc.start()
        child.close()

    @property
    def pid(self) -> int | None:
        """The child's process id."""
        pid: int | None = self.proc.pid
        return pid

    def send(self, *msg: Any) -> None:
        """Send one message to the child."""
        self.conn.send(msg)

    def recv(self) -> tuple[Any, ...]:
        """The child's next message.

        Raises:
            BenchmarkError: The child reported an error, died, or did not answer in time.
        """
        if not self.conn.poll(self.timeout_s):
            raise BenchmarkError(
                f"variant {self.name!r}: no answer from its worker in {self.timeout_s:.0f} s"
            )
        try:
            msg: tuple[Any, ...] = self.conn.recv()
        except EOFError as e:
            raise BenchmarkError(
                f"variant {self.name!r}: its worker died (exit code {self.proc.exitcode})"
            ) from e
        if msg[0] == "error":
            raise BenchmarkError(f"variant {self.name!r} failed: {msg[1]}")
        return msg

    def ask(self, *msg: Any) -> tuple[Any, ...]:
        """Send ``msg`` and return the answer."""
        self.send(*msg)
        return self.recv()

    def close(self) -> None:
        """Stop the child (killed if still running)."""
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(5)
