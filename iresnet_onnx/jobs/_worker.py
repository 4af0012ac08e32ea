"""A ``batch`` worker: one Ray actor, one runtime session, called with one batch at a time.

The session is built once from the graph's checked bytes, which travel through Ray's object store
(a worker on another machine needs the input, not the export folder); they are written to a
temporary folder only while the session loads, so an actor that Ray kills leaves no folder behind.
A worker never raises about the data: the first row it cannot use travels back as the batch's
``_reason`` column, and the driver, which knows that row's number, names it.
"""

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .. import runtimes as rt
from ._chunks import Outcome, run_chunk
from ._inputs import Chunk, InputSpec, open_npy, read_rows, table_chunk

__all__ = ["GraphWorker", "outcome_of"]


class GraphWorker:
    """One Ray actor: ``worker(batch) -> columns`` (see :func:`outcome_of` for the way back)."""

    def __init__(
        self, shipped: Any, graph_name: str, runtime: str, threads: int, source: InputSpec,
        nonfinite: str,
    ):  # fmt: skip
        import ray

        files = ray.get(shipped) if isinstance(shipped, ray.ObjectRef) else shipped
        options = {"threads": threads} if runtime.startswith(("onnxruntime", "openvino")) else {}
        with tempfile.TemporaryDirectory(prefix="iresnet-onnx-batch-") as folder:
            for name, content in files.items():
                Path(folder, name).write_bytes(content)
            self.session = rt.load(Path(folder, graph_name), runtime, **options)
        self.source = source
        self.nonfinite = nonfinite
        self.npy = open_npy(source.path) if source.kind == "npy" else None
        self.pid = os.getpid()

    def __call__(self, batch: Any) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        chunk = self._chunk(batch)
        outcome = run_chunk(self.session, chunk, self.nonfinite)
        count = len(outcome.valid)
        reasons = np.full(count, "", dtype=object)
        if outcome.problem is not None:
            reasons[outcome.problem[0]] = outcome.problem[1]
        columns = {
            self.session.graph.main: outcome.output,
            "_valid": outcome.valid,
            "_finite": outcome.finite,
            "_converged": outcome.converged,
            "_reason": reasons,
            "_pid": np.full(count, self.pid, np.int64),
            "_busy": np.full(count, (time.perf_counter() - started) / count),
        }
        if chunk.ids is not None:
            columns["id"] = chunk.ids
        elif isinstance(batch, dict):
            columns["id"] = batch["_row"]
        return columns

    def _chunk(self, batch: Any) -> Chunk:
        dtype = self.session.info.dtype
        if not isinstance(batch, dict):  # Parquet, read by Ray: a pyarrow table
            return table_chunk(batch, self.source, dtype)
        rows = batch["_row"]  # .npy, CSV: consecutive row numbers made by the driver
        first, stop = int(rows[0]), int(rows[-1]) + 1
        if stop - first != len(rows):
            raise RuntimeError(f"Ray gave a batch of rows {first}…{stop - 1} with gaps")
        return read_rows(self.source, first, stop, dtype, npy=self.npy)


def outcome_of(batch: dict[str, np.ndarray], main: str) -> Outcome:
    """A worker's columns back as the :class:`Outcome` the driver judges."""
    reasons = batch["_reason"]
    found = np.flatnonzero(reasons != "")
    problem = (int(found[0]), str(reasons[found[0]])) if len(found) else None
    return Outcome(batch[main], batch["_valid"], batch["_finite"], batch["_converged"], problem)
