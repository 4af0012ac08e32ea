"""Parquet data sets: a file, or a folder of files with one schema, read by the same rules in
every job.

The features are one list column of numbers (named by ``column``, else the graph's input name,
else the only list column) or else one numeric column per feature; an optional ``id`` column holds
integer ids. Everything the schema tells is checked before any work: a list column of strings
(issue 22, item 15), a string id column or files of different schemas are refused, never converted.
What only the rows tell — a list of the wrong length, a null — is the first problem of the batch
that holds it, which the job's driver names by row.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = ["ParquetLayout", "describe_parquet", "parquet_tables", "parquet_values"]

ID = "id"


@dataclass(frozen=True)
class ParquetLayout:
    files: tuple[Path, ...]
    rows: int
    width: int
    columns: tuple[str, ...]
    """The feature columns: one list column, or one numeric column per feature."""
    lists: bool
    id_column: str | None

    @property
    def read_columns(self) -> list[str]:
        return [*self.columns, *([self.id_column] if self.id_column else [])]


def describe_parquet(path: Path, column: str | None, input_name: str) -> ParquetLayout:
    """Files, rows, width and columns of a Parquet file or folder, from footers only."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = tuple(sorted(path.rglob("*.parquet"))) if path.is_dir() else (path,)
    if not files:
        raise DataError(f"input {path}: no .parquet files in this folder")
    try:
        schema = pq.read_schema(files[0])
        rows = 0
        for file in files:
            if not pq.read_schema(file).equals(schema, check_metadata=False):
                raise DataError(
                    f"input {path}: {file.name} has another schema than {files[0].name}; the "
                    "files of a Parquet folder must have the same columns and types"
                )
            rows += pq.read_metadata(file).num_rows
    except (OSError, pa.ArrowException) as error:
        raise DataError(f"input {path}: not readable as Parquet ({error})") from error
    id_column = _id_column(path, schema)
    lists = [f for f in schema if _is_list(f.type)]
    names = [f.name for f in lists]
    if column is None and input_name in names:
        column = input_name
    if column is None and len(lists) == 1:
        column = names[0]
    if column is not None:
        if column not in names:
            raise DataError(
                f"input {path}: no list column {column!r}; list columns: {names or 'none'}"
            )
        value_type = schema.field(column).type.value_type
        if not (pa.types.is_floating(value_type) or pa.types.is_integer(value_type)):
            raise DataError(
                f"input {path}: column {column!r} holds lists of {value_type}, not of numbers"
            )
        width = _list_width(files[0], schema.field(column).type, column)
        return ParquetLayout(files, rows, width, (column,), True, id_column)
    numeric = tuple(
        f.name for f in schema
        if f.name != id_column and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))
    )  # fmt: skip
    if not numeric:
        hint = (
            f" (several list columns, {', '.join(names)}: choose one with --column)"
            if names
            else ""
        )
        raise DataError(f"input {path}: no numeric columns and no list column of features{hint}")
    return ParquetLayout(files, rows, len(numeric), numeric, False, id_column)


def _is_list(field_type: Any) -> bool:
    import pyarrow as pa

    return (
        pa.types.is_list(field_type)
        or pa.types.is_large_list(field_type)
        or pa.types.is_fixed_size_list(field_type)
    )


def _id_column(path: Path, schema: Any) -> str | None:
    import pyarrow as pa

    if ID not in schema.names:
        return None
    id_type = schema.field(ID).type
    if not pa.types.is_integer(id_type):
        raise DataError(f"input {path}: its {ID!r} column holds {id_type}, not integers")
    return ID


def _list_width(file: Path, field_type: Any, column: str) -> int:
    """A list column's row length: fixed by its type, or else its first non-null row's (every
    row is checked again as it is read)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if pa.types.is_fixed_size_list(field_type):
        return field_type.list_size
    # a few rows at a time: a row group can hold millions, and only the first row is needed
    for batch in pq.ParquetFile(file).iter_batches(batch_size=64, columns=[column]):
        lengths = pc.list_value_length(batch.column(0)).drop_null()
        if len(lengths):
            return int(lengths[0].as_py())
    return 0


def parquet_tables(layout: ParquetLayout, chunk_rows: int) -> Iterator[Any]:
    """The data set as ``pyarrow.Table`` batches of at most ``chunk_rows`` rows, in order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for file in layout.files:
        reader = pq.ParquetFile(file)
        for batch in reader.iter_batches(batch_size=chunk_rows, columns=layout.read_columns):
            yield pa.Table.from_batches([batch])


def parquet_values(
    table: Any, layout: ParquetLayout
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, str] | None]:
    """``(values [rows, n], ids or None, the first row that cannot be used)`` of one batch."""
    count = table.num_rows
    if layout.lists:
        name = layout.columns[0]
        values, problem = _list_values(table.column(name), layout.width, name)
    else:
        values, problem = _column_values(table, layout.columns)
    ids = None
    if layout.id_column is not None:
        column = table.column(layout.id_column)
        nulls = _first_null(column)
        if nulls is not None:
            problem = _earliest(problem, (nulls, "its id is null"))
        ids = np.asarray(column.fill_null(0).to_numpy(), np.int64)
    if problem is not None:
        values = np.full((count, layout.width), np.nan)
    return values, ids, problem


def _first_null(column: Any) -> int | None:
    if column.null_count == 0:
        return None
    return int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))


def _earliest(*problems: tuple[int, str] | None) -> tuple[int, str] | None:
    found = [problem for problem in problems if problem is not None]
    return min(found, key=lambda problem: problem[0]) if found else None


def _list_values(
    column: Any, width: int, name: str
) -> tuple[np.ndarray | None, tuple[int, str] | None]:
    import pyarrow as pa
    import pyarrow.compute as pc

    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    while isinstance(array.type, pa.ExtensionType):  # Ray's tensor columns wrap a list array
        array = array.storage
    nulls = _first_null(array)
    if nulls is not None:
        return None, (nulls, f"column {name!r} is null")
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False)
    wrong = np.flatnonzero(lengths != width)
    if len(wrong):
        row = int(wrong[0])
        return None, (row, f"column {name!r} holds {int(lengths[row])} values, not {width}")
    flat = array.flatten()
    if flat.null_count:
        element = int(np.argmax(flat.is_null().to_numpy(zero_copy_only=False)))
        return None, (element // width, f"column {name!r} holds a null value")
    return flat.to_numpy(zero_copy_only=False).reshape(len(array), width), None


def _column_values(
    table: Any, columns: tuple[str, ...]
) -> tuple[np.ndarray | None, tuple[int, str] | None]:
    problem = _earliest(*(
        (row, f"column {name!r} is null")
        for name in columns if (row := _first_null(table.column(name))) is not None
    ))  # fmt: skip
    if problem is not None:
        return None, problem
    return np.column_stack([table.column(name).to_numpy() for name in columns]), None
