"""Where a job writes its rows — ``.npy``, ``.csv``, ``.parquet`` — for ``score`` and ``batch``.

:func:`check_output` refuses, before any work, an output that cannot be one: another format, a
folder, an existing file without ``overwrite``, or the input itself (the same file, also through a
symlink or a hard link; a file inside an input folder). :func:`open_sink` writes through
:func:`~iresnet_onnx._atomic.atomic_file`: a hidden file beside OUTPUT, renamed into place only
when every counted row is in, removed otherwise; the sink is closed whatever happens.

A ``.npy`` output is a memory map, and a memory map on a full disk does not fail on write: the
process dies of SIGBUS when a page cannot be stored. So its space is reserved before any work
(``posix_fallocate``), and a disk that cannot hold it is an
:class:`~iresnet_onnx.errors.OutputError` ("no space left"), as a failed write of the other
formats is.
"""

import contextlib
import errno
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._atomic import atomic_file
from .._layout import MANIFEST
from ..errors import OutputError, UsageError

__all__ = [
    "OUTPUT_SUFFIXES",
    "Columns",
    "check_output",
    "check_output_folder",
    "check_space",
    "open_sink",
]

log = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".npy", ".csv", ".parquet")


@dataclass(frozen=True)
class Columns:
    """What a job writes per row."""

    name: str
    """The main output (``y``, ``x``, ``log_prob``)."""
    width: int | None
    """Values per row of the main output; None for one (``log_prob``)."""
    dtype: np.dtype
    ids: bool = False
    """An ``id`` column first (CSV, Parquet)."""
    flags: tuple[str, ...] = ()
    """Per-row booleans after the output (CSV, Parquet): ``converged``, ``valid``."""


def check_output(
    out: Path, inputs: tuple[Path, ...] = (), *, overwrite: bool = True,
    suffixes: tuple[str, ...] = OUTPUT_SUFFIXES,
) -> None:  # fmt: skip
    """Refuse an output that cannot be written as asked, before any work."""
    if out.suffix not in suffixes:
        raise UsageError(f"output {out}: expected a {', '.join(suffixes)} file")
    if out.is_dir():
        raise OutputError(f"output {out} is a folder; expected a {out.suffix} file")
    try:
        out.resolve(strict=False)
    except (
        RuntimeError,
        OSError,
    ) as error:  # a symlink loop: the rename would replace the link itself
        raise OutputError(f"output {out}: {error}; choose another output") from error
    if out.exists() and not out.is_file():  # the atomic rename would replace a device or FIFO
        raise OutputError(f"output {out} is not a regular file (a device or pipe?); choose another")
    for source in inputs:
        if out.exists() and source.exists() and os.path.samefile(out, source):
            raise OutputError(
                f"output {out} is the same file as the input {source}: writing it would destroy "
                "the data; choose another output (nothing was written)"
            )
        if source.is_dir() and out.resolve().is_relative_to(source.resolve()):
            raise OutputError(f"output {out} is inside the input folder {source}; choose another")
    if out.exists() and not overwrite:
        raise UsageError(f"output {out} exists: pass --overwrite (overwrite=True) to replace it")


def check_output_folder(folder: Path, names: tuple[str, ...], inputs: tuple[Path, ...]) -> None:
    """Refuse, before any work, an output folder that is a file, or a file ``names`` in it that is
    one of ``inputs`` (``train --out``: the checkpoint and the losses)."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(
            f"output folder {folder} is a file; choose a folder (nothing was written)"
        )
    if (folder / MANIFEST).is_file():  # its model.pt is hashed in the manifest: keep it whole
        raise OutputError(
            f"output folder {folder} is an export folder; train into another folder and export "
            "from there (nothing was written)"
        )
    for name in names:
        check_output(folder / name, inputs, suffixes=(Path(name).suffix,))


@contextlib.contextmanager
def open_sink(out: Path, rows: int, columns: Columns) -> Iterator["Sink"]:
    """A sink for ``rows`` rows that becomes ``out`` when the block ends without error and with
    exactly ``rows`` rows written; otherwise nothing is left behind."""
    if out.suffix == ".npy":
        check_space(out, _npy_bytes(rows, columns))
    with atomic_file(out) as tmp:
        sink = SINKS[out.suffix](tmp, out, rows, columns)
        try:
            yield sink
        except BaseException:
            with contextlib.suppress(Exception):  # the job's own error is the one to report
                sink.close()
            raise
        sink.close()
        if sink.written != rows:  # rows counted and rows written must agree, always
            raise RuntimeError(f"{out}: {sink.written} rows written for {rows} rows read")


def _npy_bytes(rows: int, columns: Columns) -> int:
    return rows * (columns.width or 1) * np.dtype(columns.dtype).itemsize + 4096  # + header


def check_space(out: Path, needed: int) -> None:
    """An :class:`OutputError` ("no space left") unless the disk of ``out`` has ``needed`` bytes
    free."""
    folder = out.parent.absolute()
    while not folder.exists():  # atomic_file creates the missing folders
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise OutputError(
            f"cannot write {out}: no space left on the device ({needed / 1e6:,.1f} MB needed, "
            f"{free / 1e6:,.1f} MB free); nothing was written"
        )


def _no_space(out: Path, error: Exception) -> OutputError:
    log.debug("%s: %s", out, error)
    return OutputError(f"cannot write {out}: no space left on the device; nothing was written")


@contextlib.contextmanager
def _writing(out: Path) -> Iterator[None]:
    """pyarrow's write errors carry no errno: a full disk is told by its message."""
    try:
        yield
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(error):
            raise _no_space(out, error) from error
        raise


class Sink:
    """Rows appended in order; ``written`` counts them."""

    def __init__(self, tmp: Path, out: Path, rows: int, columns: Columns):
        self.tmp, self.out, self.rows, self.columns = tmp, out, rows, columns
        self.written = 0

    def write(
        self, output: np.ndarray, ids: np.ndarray | None = None,
        flags: dict[str, np.ndarray] | None = None,
    ) -> None:  # fmt: skip
        self._write(output, ids, flags or {})
        self.written += len(output)

    def _write(self, output: np.ndarray, ids: np.ndarray | None, flags: dict) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release the file (called once, also after an error)."""


class NpySink(Sink):
    """The main output only, row i at row i; a memory map whose blocks are reserved up front."""

    def __init__(self, tmp: Path, out: Path, rows: int, columns: Columns):
        super().__init__(tmp, out, rows, columns)
        shape = (rows,) if columns.width is None else (rows, columns.width)
        self.array = np.lib.format.open_memmap(tmp, mode="w+", dtype=columns.dtype, shape=shape)
        with open(tmp, "r+b") as handle:
            try:
                os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
            except OSError as error:
                if error.errno in (errno.ENOSPC, errno.EDQUOT):
                    del self.array
                    raise _no_space(out, error) from error
                if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                log.debug(
                    "%s: no posix_fallocate here (%s); the free space was checked", out, error
                )

    def _write(self, output: np.ndarray, ids: np.ndarray | None, flags: dict) -> None:
        self.array[self.written : self.written + len(output)] = output

    def close(self) -> None:
        if hasattr(self, "array"):
            self.array.flush()
            del self.array


class CsvSink(Sink):
    """A header, then one line per row: ``id``, the output (``y_0 … y_{n-1}`` for vectors),
    the flags as ``true``/``false``; floats with the digits that give them back exactly."""

    def __init__(self, tmp: Path, out: Path, rows: int, columns: Columns):
        super().__init__(tmp, out, rows, columns)
        self.handle = open(tmp, "w", newline="", encoding="utf-8")
        self.float = "%.9g" if np.dtype(columns.dtype).itemsize <= 4 else "%.17g"
        names = [columns.name] if columns.width is None else [
            f"{columns.name}_{j}" for j in range(columns.width)
        ]  # fmt: skip
        self.handle.write(
            ",".join([*(["id"] if columns.ids else []), *names, *columns.flags]) + "\n"
        )

    def _write(self, output: np.ndarray, ids: np.ndarray | None, flags: dict) -> None:
        cells: list[list[str]] = []
        if self.columns.ids:
            cells.append([str(value) for value in ids.tolist()])
        values = output.reshape(len(output), -1)
        cells += [
            [self.float % value for value in values[:, j].tolist()] for j in range(values.shape[1])
        ]
        cells += [["true" if flag else "false" for flag in flags[name].tolist()]
                  for name in self.columns.flags]  # fmt: skip
        self.handle.write("".join(",".join(row) + "\n" for row in zip(*cells)))

    def close(self) -> None:
        self.handle.close()


class ParquetSink(Sink):
    """``id``, the output (a fixed-size list column for vectors), then the flags."""

    def __init__(self, tmp: Path, out: Path, rows: int, columns: Columns):
        super().__init__(tmp, out, rows, columns)
        self.writer = None

    def _write(self, output: np.ndarray, ids: np.ndarray | None, flags: dict) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if output.ndim == 2:
            column = pa.FixedSizeListArray.from_arrays(
                pa.array(output.reshape(-1)), output.shape[1]
            )
        else:
            column = pa.array(output)
        table = {"id": pa.array(ids, pa.int64())} if self.columns.ids else {}
        table[self.columns.name] = column
        table.update({name: pa.array(flags[name]) for name in self.columns.flags})
        table = pa.table(table)
        with _writing(self.out):
            if self.writer is None:
                self.writer = pq.ParquetWriter(self.tmp, table.schema)
            self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            with _writing(self.out):
                self.writer.close()


SINKS = {".npy": NpySink, ".csv": CsvSink, ".parquet": ParquetSink}
