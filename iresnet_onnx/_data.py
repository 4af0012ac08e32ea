"""Data files for ``train``, ``score`` and ``batch``: ``.npy`` or ``.csv`` tables of shape [N, n].

No torch here: scoring runs on an edge install. Whole files load with :func:`load_data`; large ones
stream in chunks with :func:`iter_chunks` (a memory-mapped ``.npy``, or a CSV read a block of
lines at a time), each chunk checked as it comes, so a bad row is reported by its number.
"""

import io
import itertools
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["count_rows", "csv_header_rows", "iter_chunks", "load_data", "two_moons"]


def two_moons(n: int, noise: float = 0.08, seed: int = 0) -> np.ndarray:
    """The two-moons data set, standardised: ``[n, 2]`` float32."""
    rng = np.random.default_rng(seed)
    upper = rng.random(n) < 0.5
    angle = rng.uniform(0.0, math.pi, n)
    x = np.where(upper, np.cos(angle), 1.0 - np.cos(angle))
    y = np.where(upper, np.sin(angle), 0.5 - np.sin(angle))
    data = np.stack([x, y], axis=1) + noise * rng.standard_normal((n, 2))
    return ((data - data.mean(0)) / data.std(0)).astype(np.float32)


def load_data(path: str | Path, min_rows: int = 2) -> np.ndarray:
    """A ``[N, n]`` float32 array from ``.npy`` or ``.csv`` (comma-separated, optional header)."""
    path = _existing(path)
    chunks = [chunk for _, chunk in iter_chunks(path, chunk_rows=1 << 20)]
    data = np.concatenate(chunks) if chunks else np.empty((0, 0), np.float32)
    if data.shape[0] < min_rows:
        raise DataError(
            f"data file {path}: expected shape [N, n] with N ≥ {min_rows}, got {list(data.shape)}"
        )
    return data


def count_rows(path: str | Path) -> int:
    """The number of data rows (for a progress bar), without reading the values of a CSV."""
    path = _existing(path)
    if path.suffix == ".npy":
        return int(_open_npy(path).shape[0])
    with open(path) as handle:
        return sum(1 for line in handle if line.strip()) - csv_header_rows(path)


def iter_chunks(path: str | Path, chunk_rows: int = 65536) -> Iterator[tuple[int, np.ndarray]]:
    """``(first row, float32 [rows, n])`` blocks of the file, each checked: 2-D, one width, finite.
    A bad value is a ``ValueError`` naming the file and the row."""
    path = _existing(path)
    blocks = (
        _npy_blocks(path, chunk_rows) if path.suffix == ".npy" else _csv_blocks(path, chunk_rows)
    )
    width = None
    for start, block in blocks:
        if block.ndim != 2 or block.shape[1] < 1:
            raise DataError(f"data file {path}: expected shape [N, n], got {list(block.shape)}")
        if width is not None and block.shape[1] != width:
            raise DataError(
                f"data file {path}: row {start} has {block.shape[1]} values, not {width}"
            )
        width = block.shape[1]
        if block.dtype.kind not in "fiu":
            raise DataError(f"data file {path}: values must be numbers, got {block.dtype}")
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            row = start + int(np.argmin(finite))
            raise DataError(f"data file {path}: values must be finite numbers (row {row} is not)")
        yield start, np.ascontiguousarray(block, dtype=np.float32)


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path}: no such file")
    if path.suffix not in (".npy", ".csv"):
        raise DataError(f"data file {path}: expected .npy or .csv")
    return path


def _open_npy(path: Path) -> np.ndarray:
    try:
        data = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataError(f"data file {path}: cannot read it ({error})") from error
    if data.ndim != 2:
        raise DataError(f"data file {path}: expected shape [N, n], got {list(data.shape)}")
    return data


def _npy_blocks(path: Path, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    data = _open_npy(path)
    for start in range(0, data.shape[0], chunk_rows):
        yield start, np.asarray(data[start : start + chunk_rows])


def _csv_blocks(path: Path, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    with open(path) as handle:
        for _ in range(csv_header_rows(path)):
            handle.readline()
        start = 0
        while True:
            lines = [line for line in itertools.islice(handle, chunk_rows) if line.strip()]
            if not lines:
                return
            try:
                block = np.loadtxt(io.StringIO("".join(lines)), delimiter=",", ndmin=2)
            except ValueError as error:
                raise DataError(
                    f"data file {path}: rows {start}–{start + len(lines) - 1}: {error}"
                ) from error
            yield start, block
            start += len(lines)


def csv_header_rows(path: Path) -> int:
    """1 if the CSV's first line is a header (a cell that is not a number), else 0."""
    with open(path) as handle:
        first = handle.readline().split(",")
    try:
        [float(cell) for cell in first]
    except ValueError:
        return 1
    return 0
