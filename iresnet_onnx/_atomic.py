"""Atomic writes: a file or folder this package writes is complete, or absent, or the old one.

Everything is written beside its destination (same file system) under a hidden temporary name and
renamed into place only once it is whole, so an error, a Ctrl-C or a killed process leaves the
previous good output as it was. ``os.replace`` of a file is atomic on POSIX and Windows; a folder
that already exists is swapped in two renames (old → trash, new → final), and the old one is
restored if the second rename fails.
"""

import contextlib
import errno
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from .errors import OutputError

__all__ = ["atomic_directory", "atomic_file", "check_replaceable", "write_text_atomic"]

_SWAP_ATTEMPTS = 10
"""Rounds of the two-rename swap before giving up: each lost round means another writer won one."""


_OUTPUT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
     errno.EISDIR, errno.ENAMETOOLONG, errno.EFBIG}
)  # fmt: skip
"""Failures to write that are the destination's (full, read-only, not ours), not a bug."""


@contextlib.contextmanager
def _output_errors(path: Path) -> Iterator[None]:
    """Turn a failed write of ``path`` into an :class:`OutputError` naming it."""
    try:
        yield
    except OSError as error:
        if error.errno not in _OUTPUT_ERRNOS:
            raise
        reason = (
            "no space left on the device"
            if error.errno in (errno.ENOSPC, errno.EDQUOT)
            else (error.strerror or str(error))
        )
        raise OutputError(f"cannot write {path}: {reason}; nothing was written") from error


def _umask() -> int:
    """The process's umask, without changing it (os.umask can only set it, for every thread)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022  # the common default where /proc is not there


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """``with atomic_file(p) as tmp:`` write ``tmp``; on success it replaces ``p`` in one rename.

    The file ends with the permissions the umask gives a new file (mkstemp's private 0600 would
    survive the rename); a destination that cannot be written is an :class:`OutputError`."""
    path = Path(path)
    with _output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(handle)
        tmp = Path(name)
        try:
            yield tmp
            _fsync(tmp)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


@contextlib.contextmanager
def atomic_directory(path: str | Path, marker: str | None = None) -> Iterator[Path]:
    """``with atomic_directory(d) as tmp:`` fill the folder ``tmp``; on success it becomes ``d``.

    A previous ``d`` stays untouched until the new folder is complete, and is then replaced as a
    whole, so no reader ever sees old and new files mixed. Two writers racing for one ``d`` each
    build their own temporary folder; the last to finish wins, whole. With ``marker``, an existing
    non-empty ``d`` is replaced only if it holds that file (it is one of ours): an
    :class:`OutputError` before any work, rather than deleting a folder of someone else's files.
    The folder ends with the permissions the umask gives a new folder.
    """
    path = Path(path)
    check_replaceable(path, marker)
    with _output_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            yield tmp
            for child in tmp.rglob("*"):
                _fsync(child)
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's private 0700 would survive the rename
            _swap_in(tmp, path)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def check_replaceable(path: Path, marker: str | None) -> None:
    """An :class:`OutputError` unless ``path`` is absent, an empty folder, or a folder holding
    ``marker``."""
    if path.exists() and not path.is_dir():
        raise OutputError(f"{path} exists and is not a folder")
    if marker and path.is_dir() and any(path.iterdir()) and not (path / marker).is_file():
        raise OutputError(
            f"refusing to replace {path}: it holds files but no {marker}, so it is not an output "
            "of this tool; choose an empty or new folder"
        )


def _swap_in(new: Path, final: Path) -> None:
    for _ in range(_SWAP_ATTEMPTS):  # other writers may rename folders between our renames
        try:
            os.rename(new, final)  # succeeds when final is absent (or an empty folder)
            return
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        trash = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(final, trash)
        except FileNotFoundError:
            continue  # someone else moved it away meanwhile: try the first rename again
        try:
            os.rename(new, final)
        except OSError as error:
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST):
                # another writer's whole folder took the place meanwhile: the old one we moved
                # aside is superseded either way; try again to put ours in
                shutil.rmtree(trash, ignore_errors=True)
                continue
            os.rename(trash, final)  # put the good old folder back before giving up
            raise
        shutil.rmtree(trash, ignore_errors=True)
        return
    raise OSError(f"could not move the new {final.name} into place: the folder keeps changing")


def _fsync(path: Path) -> None:
    if path.is_file():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
