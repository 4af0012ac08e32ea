"""CSV data sets: comma-separated numbers, one row per line, read by the same rules in every job.

The rules, stated once — the scan that counts the rows and the reader that yields them share
:func:`_line_text`, so the rows counted and the rows read always agree:

- UTF-8 text; a byte-order mark at the start of the file is skipped; any other byte that is not
  UTF-8 is a :class:`~iresnet_onnx.errors.DataError` naming the line.
- Blank lines, and lines whose first non-blank character is ``#``, are skipped wherever they are.
- The first remaining line is a header when one of its cells is not a number; a header cell named
  ``id`` marks a column of integer ids (not a feature).
- Every row has as many cells as the first line (header or row): a ragged row is found by the
  scan, before any work.

The scan also records where every ``every``-th row starts (byte offset and line number), so a
worker reads rows ``[first, stop)`` with one seek, as it slices a ``.npy``.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["CsvLayout", "csv_blocks", "parse_csv", "scan_csv"]

BOM = b"\xef\xbb\xbf"
ID = "id"


@dataclass(frozen=True)
class CsvLayout:
    """What the scan found: the header, the cells per row, and where rows start."""

    names: tuple[str, ...] | None
    """The header's cells, or None for a file without a header."""
    cells: int
    id_cell: int | None
    marks: tuple[tuple[int, int, int], ...]
    """``(row, byte offset, line number)`` of rows 0, ``every``, 2·``every``, …"""
    every: int

    @property
    def features(self) -> list[int]:
        """The cells that hold the features (all but the id)."""
        return [cell for cell in range(self.cells) if cell != self.id_cell]


def _line_text(path: Path, raw: bytes, number: int) -> str | None:
    """The text of line ``number`` (1-based), or None for a line that holds no row."""
    if number == 1:
        raw = raw.removeprefix(BOM)
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError as error:
        raise DataError(
            f"input {path}: line {number} is not UTF-8 text (byte {raw[error.start]:#04x} at "
            f"column {error.start + 1}); save the file as UTF-8"
        ) from None
    if not text or text.startswith("#"):
        return None
    if "\r" in text:
        raise DataError(
            f"input {path}: line {number} holds a carriage return (lines ended by \\r alone?); "
            "save the file with \\n or \\r\\n line ends"
        )
    return text


def _cells(text: str) -> list[str]:
    return [cell.strip().strip('"').strip() for cell in text.split(",")]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def scan_csv(path: Path, every: int = 4096) -> tuple[int, CsvLayout]:
    """The number of rows of the CSV at ``path`` and its :class:`CsvLayout`; a
    :class:`DataError` naming the line for text that is not UTF-8 or a ragged row."""
    names: tuple[str, ...] | None = None
    cells = 0
    marks: list[tuple[int, int, int]] = []
    rows = offset = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):
            start, offset = offset, offset + len(raw)
            text = _line_text(path, raw, number)
            if text is None:
                continue
            count = text.count(",") + 1
            if not cells:  # the first line with content: a header, or the first row
                cells = count
                if not all(_is_number(cell) for cell in _cells(text)):
                    names = tuple(_cells(text))
                    continue
            if count != cells:
                first = "the header" if names is not None else "the first row"
                raise DataError(
                    f"input {path}: row {rows} (line {number}) has {count} cell"
                    f"{'s' * (count != 1)}; {first} has {cells}"
                )
            if rows % every == 0:
                marks.append((rows, start, number))
            rows += 1
    if names is not None and len(set(names)) < len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise DataError(f"input {path}: the header names {', '.join(map(repr, twice))} twice")
    id_cell = names.index(ID) if names is not None and ID in names else None
    return rows, CsvLayout(names, cells, id_cell, tuple(marks), every)


def csv_blocks(
    path: Path, layout: CsvLayout, first: int, stop: int, block_rows: int
) -> Iterator[tuple[int, list[str]]]:
    """``(first row, the rows' texts)`` for rows ``[first, stop)``, ``block_rows`` at a time."""
    if first >= stop:
        return
    row, offset, line = layout.marks[first // layout.every]
    texts: list[str] = []
    block_start = first
    with open(path, "rb") as handle:
        handle.seek(offset)
        for number, raw in enumerate(handle, line):
            text = _line_text(path, raw, number)
            if text is None:
                continue
            if row >= first:
                texts.append(text)
            row += 1
            if texts and (len(texts) == block_rows or row == stop):
                yield block_start, texts
                block_start, texts = row, []
            if row == stop:
                return
    raise DataError(f"input {path}: the file changed while it was read (it ended at row {row})")


def parse_csv(
    path: Path, layout: CsvLayout, texts: list[str]
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, str] | None]:
    """``(values [rows, n] float64, ids or None, the first row that is not numbers)``.

    numpy's C parser reads the block; only when it fails are the rows parsed one by one, to find
    the first cell that is not a number (or an id that is not an integer)."""
    features = layout.features
    options = {"delimiter": ",", "comments": None, "quotechar": '"', "ndmin": 2}
    try:
        values = np.loadtxt(texts, dtype=np.float64, usecols=features, **options)
        ids = None
        if layout.id_cell is not None:
            ids = np.loadtxt(texts, dtype=np.int64, usecols=[layout.id_cell], **options)[:, 0]
    except ValueError:
        return _parse_one_by_one(layout, texts)
    return values, ids, _overflow(layout, texts, values)


def _overflow(layout: CsvLayout, texts: list[str], values: np.ndarray) -> tuple[int, str] | None:
    """The first number written out in full that float64 cannot hold (it parsed as ±Inf)."""
    for index in np.flatnonzero(np.isinf(values).any(axis=1)).tolist():
        cells = _cells(texts[index])
        for column in np.flatnonzero(np.isinf(values[index])).tolist():
            cell = cells[layout.features[column]]
            if "inf" not in cell.lower():
                shown = cell if len(cell) <= 20 else f"{cell[:17]}…"
                return index, f"{shown} is beyond float64's range"
    return None


def _parse_one_by_one(
    layout: CsvLayout, texts: list[str]
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, str] | None]:
    features = layout.features
    values = np.full((len(texts), len(features)), np.nan)
    ids = np.zeros(len(texts), np.int64) if layout.id_cell is not None else None
    for index, text in enumerate(texts):
        cells = _cells(text)
        for column, cell in enumerate(cells[i] for i in features):
            try:
                values[index, column] = float(cell)
            except ValueError:
                where = f"column {layout.names[features[column]]!r}" if layout.names else (
                    f"cell {features[column] + 1}"
                )  # fmt: skip
                return values, ids, (index, f"{where} holds {cell!r}, not a number")
        if ids is not None:
            try:
                ids[index] = int(cells[layout.id_cell])
            except ValueError:
                return values, ids, (index, f"its id {cells[layout.id_cell]!r} is not an integer")
    return values, ids, None
