"""``iresnet-onnx score``: log p(x) of every row of a data file, through an export's density.onnx.

Runs on any runtime, without torch. The file is streamed in chunks (a memory-mapped ``.npy``, or a
CSV a block of lines at a time) under a progress bar, and the scores are written atomically: a
failed or interrupted run leaves no partial output, and a previous output as it was.
"""

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .. import runtimes as rt
from .._atomic import atomic_file
from .._data import count_rows, iter_chunks
from .._manifest import read_manifest
from ..errors import UsageError

__all__ = ["ScoreSummary", "score_file"]

OUTPUT_SUFFIXES = (".npy", ".csv")


@dataclass
class ScoreSummary:
    rows: int
    seconds: float
    runtime: str
    out: Path

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


def score_file(
    export_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    runtime: str = "onnxruntime:cpu",
    batch_size: int = 4096,
    progress: bool = True,
) -> ScoreSummary:
    """Write log p of each row of ``data`` (``.npy``/``.csv``, [N, n]) to ``out`` (``.npy`` or
    ``.csv``), in row order. A bad row (NaN, a width other than the model's) is a ``ValueError``
    naming the file and the row, and nothing is written."""
    export_dir, data, out = Path(export_dir), Path(data), Path(out)
    if out.suffix not in OUTPUT_SUFFIXES:
        raise UsageError(f"--out {out}: expected a .npy or .csv file")
    read_manifest(export_dir)  # an export folder, checked, before any work
    session = rt.load(export_dir / "density.onnx", runtime)
    width, dtype = session.info.input_size, session.info.dtype
    total = count_rows(data)
    started = time.perf_counter()
    with atomic_file(out) as tmp:
        if out.suffix == ".npy":
            scores = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=(total,))
            sink = _NpySink(scores)
        else:
            sink = _CsvSink(tmp)
        with tqdm(total=total, desc="score", unit="row", disable=not progress) as bar:
            for start, chunk in iter_chunks(data, batch_size):
                if chunk.shape[1] != width:
                    raise UsageError(
                        f"data file {data}: rows have {chunk.shape[1]} values, the export "
                        f"{export_dir} expects {width}"
                    )
                log_prob = session.run_all(chunk.astype(dtype, copy=False))["log_prob"]
                sink.write(start, log_prob)
                bar.update(len(chunk))
        sink.close()
    return ScoreSummary(total, time.perf_counter() - started, session.name, out)


class _NpySink:
    def __init__(self, scores: np.ndarray):
        self.scores = scores

    def write(self, start: int, values: np.ndarray) -> None:
        self.scores[start : start + len(values)] = values

    def close(self) -> None:
        self.scores.flush()
        del self.scores


class _CsvSink:
    def __init__(self, path: Path):
        self.handle = open(path, "w", newline="")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(["log_prob"])

    def write(self, start: int, values: np.ndarray) -> None:
        self.writer.writerows([f"{value:.9g}"] for value in values.tolist())

    def close(self) -> None:
        self.handle.close()
