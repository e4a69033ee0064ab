"""File helpers: every output is written to a temporary file, checked, then renamed into place.

A crash, a full disk, a kill or a bad input never leaves a half-written file where a good one
was. The rules every writer in edgeopt follows through these helpers:

- the temporary file sits beside its target (same file system, so the rename is atomic) and
  is named ``.<target>.edgeopt-<pid>-<random><suffix>``; a later write to the same target
  deletes the temporaries of processes that are gone (a SIGKILL cannot clean up after itself);
- the data is flushed and ``fsync``-ed before the rename, so a full disk or an I/O error
  surfaces as an error here, and the old file stays;
- the file gets the mode the user's umask gives (``mkstemp`` makes it 0600);
- OS errors become one `WriteError` naming the path and a fix;
- a target that is the very file being read (same inode, also through a symlink) is refused;
- caches record a sha256 beside each entry when it is written and check it before use.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from edgeopt.errors import ConfigError, WriteError

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "cache_dir",
    "check_distinct",
    "commit",
    "file_sha256",
    "os_error_message",
    "read_verified",
    "read_yaml",
    "record_sha256",
    "record_source",
    "recorded_source",
    "remove_stale",
    "remove_stale_temporaries",
    "temporary_path",
]

logger = logging.getLogger(__name__)

_FIXES = {
    errno.ENOSPC: "free some disk space or write elsewhere",
    errno.EDQUOT: "free some of your disk quota or write elsewhere",
    errno.EACCES: "choose a folder you may write to, or change its permissions",
    errno.EPERM: "choose a folder you may write to, or change its permissions",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EEXIST: "a file is in the way of a folder: remove it or choose another path",
    errno.ENOTDIR: "a file is in the way of a folder: remove it or choose another path",
    errno.EISDIR: "the path is a folder: give a file name",
    errno.EFBIG: "the file is too large for this file system: write elsewhere",
    errno.ENAMETOOLONG: "use a shorter path",
}


def os_error_message(e: OSError, path: str | os.PathLike[str] | None = None) -> str:
    """One line for an OS error: the path, what failed, and how to fix it."""
    where = path if path is not None else (e.filename or "a file")
    what = e.strerror or str(e)
    fix = _FIXES.get(e.errno or 0, "check the path and its permissions")
    return f"{where}: {what}; {fix}"


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(folder: str | os.PathLike[str], prefix: str) -> list[Path]:
    """Delete files or folders named ``<prefix><pid>-...`` whose process no longer runs.

    Every temporary edgeopt makes carries its pid after a fixed prefix, so what a killed run
    (SIGKILL: no cleanup possible) left is found and removed by the next run.

    Returns:
        What was removed.
    """
    removed = []
    with contextlib.suppress(OSError):
        for path in Path(folder).iterdir():
            if not path.name.startswith(prefix):
                continue
            pid = path.name[len(prefix) :].split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        path.unlink()
                removed.append(path)
    if removed:
        logger.info("removed %d stale temporaries in %s", len(removed), folder)
    return removed


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.edgeopt-"


def remove_stale_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Delete temporaries of ``target`` left by edgeopt processes that no longer run."""
    target = Path(target)
    return remove_stale(target.parent, _temp_prefix(target))


def temporary_path(target: str | os.PathLike[str], suffix: str = "") -> Path:
    """Create an empty temporary file beside ``target`` (see the module docstring).

    Raises:
        WriteError: The folder cannot be made or written.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target)
        fd, tmp = tempfile.mkstemp(
            prefix=f"{_temp_prefix(target)}{os.getpid()}-",
            suffix=suffix or target.suffix,
            dir=target.parent,
        )
    except OSError as e:
        raise WriteError(f"cannot write {os_error_message(e, target)}") from e
    os.close(fd)
    return Path(tmp)


def commit(tmp: Path, target: str | os.PathLike[str]) -> None:
    """Flush ``tmp`` to disk, give it the umask's mode, and rename it onto ``target``.

    Raises:
        WriteError: The flush or rename failed (``target`` is untouched).
    """
    try:
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, _umask_mode())
        tmp.replace(target)
    except OSError as e:
        raise WriteError(f"cannot write {os_error_message(e, target)}") from e


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; flush and rename it onto ``target`` on success.

    An OS error raised by the block or by the flush (a full disk, a permission) becomes a
    `WriteError`; the temporary file is removed and ``target`` keeps its old content.

    Args:
        target: The final file.
        suffix: Suffix for the temporary file (some writers choose the format by extension).
    """
    target = Path(target)
    tmp_path = temporary_path(target, suffix)
    try:
        try:
            yield tmp_path
        except OSError as e:
            if e.filename not in (None, str(tmp_path)):
                raise
            raise WriteError(f"cannot write {os_error_message(e, target)}") from e
        commit(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically; returns the target path."""
    with atomic_path(target) as tmp, tmp.open("wb") as f:
        f.write(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically; returns the target path."""
    return atomic_write_bytes(target, text.encode("utf-8"))


def check_distinct(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Refuse to write ``target`` when it is ``source`` itself (same inode, symlinks followed).

    Raises:
        ConfigError: They are the same file.
    """
    with contextlib.suppress(OSError):
        if os.path.samefile(source, target):
            raise ConfigError(
                f"{target}: the output is the input file {source} itself; writing it would "
                "destroy the input: choose another output path"
            )


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def record_sha256(path: str | os.PathLike[str]) -> Path:
    """Record ``path``'s sha256 beside it (``<name>.sha256``), for `read_verified` later."""
    path = Path(path)
    return atomic_write_text(_sidecar(path), file_sha256(path) + "\n")


def read_verified(path: str | os.PathLike[str]) -> bool:
    """True when a cache entry exists and matches the sha256 recorded when it was written.

    A damaged or tampered entry (or one without a record) is deleted with its record and
    logged, so the caller rebuilds it.
    """
    path = Path(path)
    sidecar = _sidecar(path)
    if not path.is_file():
        return False
    try:
        ok = sidecar.read_text().strip() == file_sha256(path)
    except (OSError, UnicodeDecodeError):
        ok = False
    if not ok:
        logger.warning("%s: cached file damaged or unrecorded; rebuilding it", path)
        for p in (path, sidecar):
            with contextlib.suppress(OSError):
                p.unlink()
    return ok


def cache_dir() -> Path:
    """Where edgeopt caches: ``EDGEOPT_CACHE_DIR``, else the user's XDG cache folder."""
    env = os.environ.get("EDGEOPT_CACHE_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("edgeopt"))


def record_source(path: str | os.PathLike[str], digest: str) -> None:
    """Remember on this machine where the file with sha256 ``digest`` is (a converted model
    names its source by sha256 and file name only, so it is the same file on every machine;
    the LiteRT backend finds the source here). Best effort: a read-only cache records nothing."""
    with contextlib.suppress(OSError):
        atomic_write_text(cache_dir() / "sources" / digest, str(Path(path).resolve()) + "\n")


def recorded_source(digest: str) -> Path | None:
    """Where `record_source` last saw the file with sha256 ``digest``, if it did."""
    try:
        return Path((cache_dir() / "sources" / digest).read_text().strip())
    except (OSError, UnicodeDecodeError):
        return None


def read_yaml(path: str | os.PathLike[str], what: str) -> object:
    """Parse a YAML file with ``yaml.safe_load`` (no objects built from tags).

    Args:
        path: The file.
        what: What it is, for messages ("recipe", "model card").

    Raises:
        ConfigError: Unreadable, not UTF-8, or not valid YAML; the message names the file.
    """
    import yaml

    p = Path(path)
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{p}: cannot read the {what}: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{p}: the {what} is not UTF-8 text (byte {e.start}: {e.reason}); save it as UTF-8"
        ) from e
    except (yaml.YAMLError, RecursionError) as e:
        raise ConfigError(f"{p}: the {what} is not valid YAML: {e}") from e
