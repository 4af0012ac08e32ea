"""The data sets a job reads — ``.npy``, ``.csv``, Parquet — for ``score``, ``batch`` and ``train``.

:func:`describe_input` looks at a data set before any work: its format, rows, width and id
column, from a ``.npy`` header, Parquet footers, or one pass over a CSV's lines. The rows it
counts are exactly the rows the readers yield: :func:`read_chunks` streams them in order (``score``,
``train``), :func:`read_rows` reads rows ``[first, stop)`` of a ``.npy`` or CSV (a ``batch``
worker), :func:`table_chunk` turns a Parquet batch into rows (both).

A row that cannot be used is never dropped and never invented: a :class:`Chunk` carries the first
such row with the reason, and the driver, which knows the row's number, refuses the job naming the
file and the row. Values are converted to the graph's float type here, losslessly for any byte
order; a value beyond that type's range is such a row, not an Inf.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ._csv_reader import CsvLayout, csv_blocks, parse_csv, scan_csv
from ._parquet_reader import ParquetLayout, describe_parquet, parquet_tables, parquet_values

__all__ = ["Chunk", "InputSpec", "describe_input", "read_chunks", "read_rows", "table_chunk"]

FORMATS = ".npy, .csv, or a Parquet file or folder"


@dataclass(frozen=True)
class InputSpec:
    """How the rows of a data set are read: found by :func:`describe_input`, before any work."""

    path: Path
    kind: str  # "npy", "csv" or "parquet"
    rows: int
    width: int
    id_column: str | None = None
    csv: CsvLayout | None = None
    parquet: ParquetLayout | None = None


@dataclass
class Chunk:
    """Consecutive rows of a data set, in the graph's float type."""

    start: int | None
    """The number of the first row (None for a Parquet batch on a worker: the driver knows it)."""
    values: np.ndarray
    ids: np.ndarray | None = None
    problem: tuple[int, str] | None = None
    """The first row (counted within the chunk) that cannot be used, and why."""

    @property
    def finite(self) -> np.ndarray:
        """Per row: every value is finite (the rows a job can run)."""
        return np.isfinite(self.values).all(axis=1)


def describe_input(
    path: str | Path,
    width: int | None = None,
    *,
    column: str | None = None,
    input_name: str = "x",
    every: int = 4096,
) -> InputSpec:
    """Format, rows and width of the data set at ``path``; a :class:`DataError` naming the file if
    it cannot be read, has no rows, or (given ``width``) rows of another width.

    ``column``: the Parquet list column of features. ``every``: a CSV's rows are indexed every so
    many rows (a worker's read seeks to the mark before its first row)."""
    path = Path(path).absolute()  # a Ray worker's working folder is not the driver's
    if not path.exists():
        raise DataError(f"input {path}: no such file")
    if not (path.is_file() or path.is_dir()):  # a FIFO or device would block or never end
        raise DataError(f"input {path}: not a regular file or folder (a pipe or device?)")
    if path.is_dir() or path.suffix == ".parquet":
        layout = describe_parquet(path, column, input_name)
        spec = InputSpec(path, "parquet", layout.rows, layout.width, layout.id_column,
                         parquet=layout)  # fmt: skip
    elif path.suffix not in (".npy", ".csv"):
        raise DataError(f"input {path}: expected .npy or .csv, or a Parquet file or folder")
    elif column is not None:
        raise DataError(f"input {path}: --column applies to Parquet input, not {path.suffix}")
    elif path.suffix == ".npy":
        shape = open_npy(path).shape
        spec = InputSpec(path, "npy", int(shape[0]), int(shape[1]))
    else:
        rows, csv = scan_csv(path, every)
        id_column = csv.names[csv.id_cell] if csv.id_cell is not None else None
        spec = InputSpec(path, "csv", rows, len(csv.features), id_column, csv=csv)
    if width is not None and spec.width != width:
        raise DataError(f"input {path}: rows have {spec.width} values, the graph expects {width}")
    if spec.rows == 0:
        raise DataError(f"input {path}: no rows")
    return spec


def open_npy(path: Path) -> np.ndarray:
    """The ``[N, n]`` array of numbers in a ``.npy`` file, memory-mapped; never unpickled."""
    if os.path.getsize(path) == 0:
        raise DataError(f"input {path}: the file is empty, not a .npy array")
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        # numpy cannot memory-map an array of zero bytes: read its header instead
        data = _empty_npy(path, error)
    if not isinstance(data, np.ndarray):  # np.load opens a .npz archive whatever its name
        data.close()
        raise DataError(f"input {path}: an .npz archive of arrays, not a .npy array")
    if data.ndim != 2:
        raise DataError(f"input {path}: expected shape [N, n], got {list(data.shape)}")
    if data.dtype.kind not in "fiu":
        raise DataError(f"input {path}: holds {dtype_name(data.dtype)} values, not numbers")
    return data


def _empty_npy(path: Path, error: Exception) -> np.ndarray:
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)  # fmt: skip
            shape, _, dtype = read_header(handle)
    except (OSError, ValueError, EOFError):
        raise DataError(f"input {path}: not a readable .npy array ({error})") from error
    if 0 not in shape:
        raise DataError(f"input {path}: not a readable .npy array ({error})") from error
    return np.empty(shape, dtype)


def dtype_name(dtype: np.dtype) -> str:
    """A dtype as a person says it: ``big-endian float32 (>f4)`` rather than ``float32``."""
    if dtype.fields is not None:
        return f"structured ({dtype})"
    if not dtype.isnative:
        order = "big" if dtype.byteorder == ">" else "little"
        return f"{order}-endian {dtype.name} ({dtype.str})"
    return "Python object" if dtype.kind == "O" else dtype.name


def read_chunks(spec: InputSpec, chunk_rows: int, dtype: Any) -> Iterator[Chunk]:
    """Every row of the data set once, in order, ``chunk_rows`` at a time."""
    if spec.kind == "parquet":
        start = 0
        for table in parquet_tables(spec.parquet, chunk_rows):
            yield table_chunk(table, spec, dtype, start)
            start += table.num_rows
    elif spec.kind == "csv":
        for start, texts in csv_blocks(spec.path, spec.csv, 0, spec.rows, chunk_rows):
            yield _csv_chunk(spec, start, texts, dtype)
    else:
        data = open_npy(spec.path)
        for start in range(0, spec.rows, chunk_rows):
            yield convert(start, data[start : start + chunk_rows], dtype)


def read_rows(spec: InputSpec, first: int, stop: int, dtype: Any, npy: Any = None) -> Chunk:
    """Rows ``[first, stop)`` of a ``.npy`` (``npy``: the file already opened) or CSV."""
    if spec.kind == "npy":
        return convert(first, (open_npy(spec.path) if npy is None else npy)[first:stop], dtype)
    if spec.kind != "csv":
        raise ValueError(f"read_rows reads .npy and CSV data sets, not {spec.kind}")
    ((start, texts),) = csv_blocks(spec.path, spec.csv, first, stop, stop - first)
    return _csv_chunk(spec, start, texts, dtype)


def _csv_chunk(spec: InputSpec, start: int, texts: list[str], dtype: Any) -> Chunk:
    values, ids, problem = parse_csv(spec.path, spec.csv, texts)
    return convert(start, values, dtype, ids, problem)


def table_chunk(table: Any, spec: InputSpec, dtype: Any, start: int | None = None) -> Chunk:
    """A Parquet batch (``pyarrow.Table``) as a :class:`Chunk`."""
    values, ids, problem = parquet_values(table, spec.parquet)
    return convert(start, values, dtype, ids, problem)


def convert(
    start: int | None,
    raw: np.ndarray,
    dtype: Any,
    ids: np.ndarray | None = None,
    problem: tuple[int, str] | None = None,
) -> Chunk:
    """``raw`` rows in ``dtype``; the first value beyond ``dtype``'s range becomes the chunk's
    problem (a float32 graph cannot take 1e308: it would run as Inf)."""
    dtype = np.dtype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        values = np.ascontiguousarray(raw, dtype=dtype)
    if not values.flags.writeable:  # a memory-mapped file's own pages: torch warns on them
        values = values.copy()
    if raw.dtype.kind == "f" and np.finfo(raw.dtype).max > np.finfo(dtype).max:
        overflow = np.isfinite(raw) & ~np.isfinite(values)
        if overflow.any():
            row, cell = np.argwhere(overflow)[0].tolist()
            if problem is None or row < problem[0]:
                problem = (row, f"{raw[row, cell]:g} is beyond {dtype.name}'s range "
                                f"(±{np.finfo(dtype).max:.4g})")  # fmt: skip
    return Chunk(start, values, ids, problem)
