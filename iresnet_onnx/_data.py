"""Data for ``train`` and the demo: a data set loaded whole, and the two-moons set.

No torch here. :func:`load_data` reads through the data jobs' readers
(:mod:`iresnet_onnx.jobs._inputs`), so ``train`` takes the same files by the same rules as ``score``
and ``batch`` — ``.npy``, ``.csv`` (optional header, ``#`` comments, a UTF-8 byte-order mark),
Parquet — and refuses a bad row by its number.
"""

import math
from pathlib import Path

import numpy as np

from .errors import DataError
from .jobs._chunks import Outcome, Tally
from .jobs._inputs import describe_input, read_chunks

__all__ = ["load_data", "two_moons"]

_CHUNK_ROWS = 1 << 16


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
    """A ``[N, n]`` float32 array of the data set at ``path`` (``.npy``, ``.csv``, Parquet).

    A row that is not ``n`` finite float32 numbers is a :class:`DataError` naming the file and
    the row, as are fewer than ``min_rows`` rows."""
    path = Path(path)
    spec = describe_input(path)
    if spec.rows < min_rows:
        raise DataError(
            f"input {path}: expected shape [N, n] with N ≥ {min_rows}, got {[spec.rows, spec.width]}"
        )
    tally = Tally(spec.path, "reject")  # every row must be finite
    chunks = []
    for chunk in read_chunks(spec, _CHUNK_ROWS, np.float32):
        finite = chunk.finite
        tally.add(Outcome(chunk.values, finite, finite, finite, chunk.problem), chunk.ids)
        chunks.append(chunk.values)
    return np.concatenate(chunks)
