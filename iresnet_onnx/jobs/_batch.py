"""``iresnet-onnx batch``: one export's graph over a data set past one process, on Ray Data.

The driver checks everything it can before Ray starts — the export's hashes, that the runtime can
run the graph (a session is opened here once), the input (format, width, rows; every line of a
CSV), the output (not the input, not existing without ``overwrite``, space for a ``.npy``, which is
reserved) — then Ray Data streams the rows through an actor pool (:mod:`._worker`: one session per
actor) and the driver judges and writes every result batch, in input order, into a hidden file
beside OUTPUT that is renamed into place only when all rows are in.

Ray semantics this relies on (Ray ≥ 2.44; measured with 2.60):

- an actor that dies (killed, out of memory, its node lost) is restarted and its unfinished tasks
  are retried (``max_restarts=-1``, ``max_task_retries=-1`` are Ray Data's defaults for actor
  pools), and a retried task's output replaces the lost one, so each row arrives exactly once;
- ``preserve_order`` hands the driver the batches in input order, so a row's position is its
  number, and the driver names a bad row by it;
- Ray's scheduler counts logical CPUs: read tasks (Parquet) need one of their own, so when the
  input is read by Ray the actors leave one CPU free, or the job would wait forever.

Non-finite rows follow :mod:`._chunks` (``nonfinite``: ``reject`` by default, ``warn``, ``flag``);
an inverse row that did not meet the graph's tolerance is counted in the summary and, in a CSV or
Parquet OUTPUT, has ``converged`` false.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import runtimes as rt
from ..errors import UsageError
from ..graphs import graph as graph_named
from ._chunks import NONFINITE_POLICIES, Tally
from ._cluster import dataset_of, job_ray, plan_local_workers, plan_workers, reraised
from ._inputs import InputSpec, describe_input
from ._integrity import checked_export
from ._sinks import Columns, Sink, check_output, open_sink
from ._worker import GraphWorker, outcome_of

__all__ = ["BatchProgress", "BatchSummary", "WorkerStats", "run_batch"]


@dataclass
class WorkerStats:
    rows: int = 0
    busy_seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        """Rows per second of the worker's own time in the runtime (not waiting for Ray)."""
        return self.rows / self.busy_seconds if self.busy_seconds > 0 else float("inf")


@dataclass
class BatchSummary:
    rows: int
    seconds: float
    """From the first dataset operation to OUTPUT in place: reading, running, writing."""
    ray_start_seconds: float
    """Starting (or joining) Ray, apart: a fixed cost that a long job amortises."""
    graph: str
    runtime: str
    out: Path
    workers: dict[int, WorkerStats] = field(default_factory=dict)
    """Per worker process id. A restarted actor is a new process, so a fault shows here."""
    not_converged: int = 0
    nonfinite: int = 0
    """Rows with NaN or Inf skipped (``nonfinite="flag"``; their output is NaN)."""
    nonfinite_results: int = 0
    """Finite rows whose output is NaN or Inf (``warn``, ``flag``; named in a warning)."""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class BatchProgress:
    """What the driver has written so far; given to ``on_batch`` after each result batch."""

    rows_done: int
    total: int
    worker_pid: int


def run_batch(
    export_dir: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    graph: str = "forward",
    runtime: str = "onnxruntime:cpu",
    workers: int = 1,
    threads: int | None = None,
    batch_size: int = 4096,
    address: str | None = None,
    overwrite: bool = False,
    nonfinite: str = "reject",
    column: str | None = None,
    progress: bool = True,
    on_batch: Callable[[BatchProgress], None] | None = None,
) -> BatchSummary:
    """Run ``graph`` (``forward``, ``inverse`` or ``density``) of ``export_dir`` on every row of
    ``data`` and write the results to ``out``, in input order.

    Args:
        data: a ``.npy`` [N, n] array, a ``.csv`` table (one column per feature, optional header,
            ``#`` comment lines, an optional ``id`` column), or a Parquet file or folder (a list
            column named ``column``, the graph's input name, or the only list column; else one
            numeric column per feature; an optional integer ``id`` column).
        out: ``.npy`` (the main output only), ``.csv`` or ``.parquet`` (``id``, the output,
            ``converged`` for an inverse, ``valid`` with ``nonfinite="flag"``).
        workers, threads: actors, and runtime threads each (default: Ray's CPUs / workers).
        address: join a running Ray cluster (default: a private local Ray for this call, or the
            one this process already started).
        nonfinite: ``reject``, ``warn`` or ``flag`` (see :mod:`iresnet_onnx.jobs._chunks`).

    Returns:
        A :class:`BatchSummary`. Bad arguments, input or output raise the package's errors
        (:class:`~iresnet_onnx.errors.UsageError` and its kin; a graph changed since export,
        :class:`~iresnet_onnx.errors.VerificationError`), before Ray starts wherever they can be
        known then; a bad row names the file and the row, and nothing is written.
    """
    export_dir, data, out = Path(export_dir), Path(data), Path(out)
    _check_arguments(graph, nonfinite, workers, threads, batch_size)
    plan_local_workers(address, workers, threads)
    check_output(out, (data,), overwrite=overwrite)
    checked = checked_export(export_dir, graph, runtime)
    with rt.load(checked.graph_file, runtime) as session:  # can this runtime run it? here, once
        info = session.info
    source = describe_input(data, info.input_size, column=column, input_name=info.graph.input,
                            every=batch_size)  # fmt: skip
    flags = ("converged",) * (graph == "inverse") + ("valid",) * (nonfinite == "flag")
    columns = Columns(info.graph.main, None if info.graph.main == "log_prob" else info.input_size,
                      info.dtype, ids=True, flags=flags)  # fmt: skip
    tally = Tally(source.path, nonfinite, info.graph, info.dtype.name)
    summary = BatchSummary(source.rows, 0.0, 0.0, graph, runtime, out)
    with open_sink(out, source.rows, columns) as sink, job_ray(address) as ray_start_seconds:
        import ray

        summary.ray_start_seconds = ray_start_seconds
        threads, actor_cpus = plan_workers(
            ray.cluster_resources().get("CPU", 0.0),
            workers,
            threads,
            reads=source.kind == "parquet",
        )
        worker_args = (ray.put(checked.files), checked.graph_file.name, runtime, threads, source,
                       nonfinite)  # fmt: skip
        results = dataset_of(source, batch_size, workers).map_batches(
            GraphWorker, fn_constructor_args=worker_args, batch_size=batch_size,
            batch_format="pyarrow" if source.kind == "parquet" else "numpy",
            concurrency=workers, num_cpus=actor_cpus,
        )  # fmt: skip
        started = time.perf_counter()
        with reraised(source.path):
            _drain(results, sink, summary, tally, source, progress, on_batch)
        summary.seconds = time.perf_counter() - started
    tally.warn(out)
    summary.not_converged, summary.nonfinite = tally.not_converged, tally.skipped
    summary.nonfinite_results = tally.nonfinite_results
    return summary


def _check_arguments(
    graph: str, nonfinite: str, workers: int, threads: int | None, batch_size: int
) -> None:
    """Every check that needs neither the files nor Ray."""
    graph_named(graph)
    if nonfinite not in NONFINITE_POLICIES:
        raise UsageError(
            f"nonfinite={nonfinite!r}: expected one of {', '.join(NONFINITE_POLICIES)}"
        )
    for name, value in (("workers", workers), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UsageError(f"{name}={value!r}: expected a positive integer")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)
                                or threads < 1):  # fmt: skip
        raise UsageError(f"threads={threads!r}: expected a positive integer")


def _drain(
    results: Any, sink: Sink, summary: BatchSummary, tally: Tally, source: InputSpec,
    progress: bool, on_batch: Callable[[BatchProgress], None] | None,
) -> None:  # fmt: skip
    """Read the result batches in order on the driver, judge them, write them, show progress."""
    main = tally.graph.main
    with tqdm(total=source.rows, desc=f"batch {summary.graph}", unit="row", disable=not progress,
              unit_scale=True) as bar:  # fmt: skip
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            done = tally.rows
            count = len(batch["_pid"])
            ids = batch["id"] if "id" in batch else np.arange(done, done + count, dtype=np.int64)
            if source.id_column is None and not (ids[0] == done and ids[-1] == done + count - 1):
                # row numbers are made on the driver: any other order means Ray broke its promise
                raise RuntimeError(f"Ray returned rows {ids[0]}… where row {done} was due")
            tally.add(outcome_of(batch, main), ids if source.id_column else None)
            sink.write(batch[main], ids, {"converged": batch["_converged"] & batch["_valid"],
                                          "valid": batch["_valid"]})  # fmt: skip
            for pid in np.unique(batch["_pid"]).tolist():
                mine = batch["_pid"] == pid
                stats = summary.workers.setdefault(pid, WorkerStats())
                stats.rows += int(mine.sum())
                stats.busy_seconds += float(batch["_busy"][mine].sum())
            bar.update(count)
            if on_batch is not None:
                on_batch(BatchProgress(tally.rows, source.rows, int(batch["_pid"][0])))
    if tally.rows != source.rows:  # Ray lost or repeated rows: never write such an output
        raise RuntimeError(f"Ray returned {tally.rows} rows for {source.rows} input rows")
