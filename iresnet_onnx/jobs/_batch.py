"""``iresnet-onnx batch``: one export's graph over a data set past one process, on Ray Data.

The pipeline: the driver checks everything it can before Ray starts (the export folder and its
hashes, the input's format, width and row count, the output path), then Ray Data streams the rows
through an actor pool — one runtime :class:`~iresnet_onnx.runtimes.Session` per actor, built once
from the graph's bytes, which travel through Ray's object store, so workers on other machines need
the input but not the export folder — and the driver writes every result batch, in input order,
into a hidden temporary file beside OUTPUT that is renamed into place only when all rows are in.

Ray semantics this relies on (Ray ≥ 2.44; measured with 2.60):

- an actor that dies (killed, out of memory, its node lost) is restarted and its unfinished tasks
  are retried (``max_restarts=-1``, ``max_task_retries=-1`` are Ray Data's defaults for actor
  pools), and a retried task's output replaces the lost one, so each row arrives exactly once;
- ``preserve_order`` hands the driver the batches in input order, so a row's position is its id
  where the input has no ``id`` column;
- Ray's scheduler counts logical CPUs: read tasks (Parquet, CSV) need one of their own, so when
  the input is read by Ray the actors leave one CPU free, or the job would wait forever.

Non-finite input rows (NaN, ±Inf) are rejected by default: the job stops with an error naming the
first one, and nothing is written. With ``nonfinite="flag"`` they are skipped instead: their output
is NaN and, in a Parquet OUTPUT, their ``valid`` column is false. An inverse row that did not meet
the graph's tolerance is counted in the summary and, in Parquet, has ``converged`` false.
"""

import contextlib
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from .. import runtimes as rt
from .._atomic import atomic_file
from .._data import count_rows as count_data_rows
from .._data import csv_header_rows
from .._manifest import read_manifest, sha256
from ..errors import InvalidModelError, UsageError
from ..graphs import GRAPHS

__all__ = ["BatchProgress", "BatchSummary", "run_batch"]

log = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".npy", ".parquet")
NONFINITE_POLICIES = ("reject", "flag")
NO_PROGRESS_TIMEOUT_S = 600.0
"""Ray Data's own default is 30 minutes of silence before it gives up on a stuck job."""
BLOCKS_PER_BATCH = 8
"""Rows per Ray block of a ``.npy`` input, in batches: few enough blocks to keep Ray's per-block
overhead small, enough to spread over the actors."""


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

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class BatchProgress:
    """What the driver has written so far; given to ``on_batch`` after each result batch."""

    rows_done: int
    total: int
    worker_pid: int


@dataclass(frozen=True)
class InputSpec:
    """How the rows of INPUT are read: found on the driver, before Ray starts."""

    path: Path
    kind: str  # "npy", "parquet" or "csv"
    rows: int
    width: int
    columns: tuple[str, ...]  # the feature columns (Parquet, CSV); empty for .npy
    id_column: str | None
    csv_header: bool = True


# --- the driver --------------------------------------------------------------------------------


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

    ``data``: a ``.npy`` [N, n] array, a ``.csv`` table (one column per feature, optional header,
    an optional ``id`` column), or a Parquet file or folder (a list column named ``column``, the
    graph's input name, or the only list column; else one numeric column per feature; an
    optional ``id`` column). ``out``: ``.npy`` (the main output only) or ``.parquet`` (``id``,
    the output, ``converged`` for an inverse, ``valid`` with ``nonfinite="flag"``).

    ``workers`` actors run ``threads`` runtime threads each (default: Ray's CPUs / workers);
    ``address`` joins a running Ray cluster (default: a private local Ray for this call, or the
    one this process already started). ``ValueError`` for bad arguments, a bad input or an
    existing ``out`` without ``overwrite``, before Ray starts where it can be known then.
    """
    export_dir, out = Path(export_dir), Path(out)
    graph_file, checkpoint = _check_arguments(
        export_dir, out, graph, runtime, workers, threads, batch_size, nonfinite, overwrite
    )
    _, info = rt.read_model(graph_file)
    if info.graph.name != graph:
        raise InvalidModelError(f"{graph_file}: a {info.graph.name} graph, not a {graph} graph")
    source = describe_input(Path(data), expected_width=info.input_size, column=column,
                            input_name=GRAPHS[graph].input)  # fmt: skip
    shipped = {graph_file.name: graph_file.read_bytes()}
    if runtime.partition(":")[0] == "torch":  # the eager session needs the checkpoint beside it
        shipped["model.pt"] = checkpoint.read_bytes()

    with _ray(address) as ray_start_seconds:
        import ray

        threads, actor_cpus = _plan_workers(
            ray.cluster_resources().get("CPU", 0.0), workers, threads, reads=source.kind != "npy"
        )
        dataset = _dataset(source, batch_size, workers)
        worker_args = (ray.put(shipped), graph_file.name, runtime, threads, source, nonfinite)
        results = dataset.map_batches(
            _GraphWorker,
            fn_constructor_args=worker_args,
            batch_size=batch_size,
            batch_format="numpy",
            concurrency=workers,
            num_cpus=actor_cpus,
        )
        started = time.perf_counter()
        summary = BatchSummary(
            rows=source.rows, seconds=0.0, ray_start_seconds=ray_start_seconds, graph=graph,
            runtime=runtime, out=out,
        )  # fmt: skip
        with atomic_file(out) as tmp:
            sink = _sink(tmp, out.suffix, source.rows, info, graph, nonfinite)
            _drain(results, sink, summary, source, nonfinite, progress, on_batch)
            sink.close()
        summary.seconds = time.perf_counter() - started
    return summary


def _check_arguments(
    export_dir: Path, out: Path, graph: str, runtime: str, workers: int, threads: int | None,
    batch_size: int, nonfinite: str, overwrite: bool,
) -> tuple[Path, Path]:  # fmt: skip
    """Every check that needs neither Ray nor the data; the graph file and the checkpoint."""
    if graph not in GRAPHS:
        raise UsageError(f"graph {graph!r}: expected one of {', '.join(GRAPHS)}")
    if nonfinite not in NONFINITE_POLICIES:
        raise UsageError(
            f"nonfinite={nonfinite!r}: expected one of {', '.join(NONFINITE_POLICIES)}"
        )
    for name, value in (("workers", workers), ("batch_size", batch_size), ("threads", threads)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UsageError(f"{name}={value!r}: expected a positive integer")
    if out.suffix not in OUTPUT_SUFFIXES:
        raise UsageError(f"output {out}: expected a .npy or .parquet file")
    if out.exists() and not overwrite:
        raise UsageError(f"output {out} exists: pass --overwrite (overwrite=True) to replace it")
    if out.is_dir():
        raise UsageError(f"output {out} is a folder; expected a .npy or .parquet file")
    manifest = read_manifest(export_dir)
    name = f"{graph}.onnx"
    entry = manifest["files"].get(name)
    graph_file = export_dir / name
    if entry is None or not graph_file.is_file():
        hint = " (exports before density.onnx lack it: export again)" if graph == "density" else ""
        raise InvalidModelError(f"{export_dir} has no {name}{hint}")
    if sha256(graph_file) != entry["sha256"]:
        raise InvalidModelError(f"{graph_file} changed since export (its sha256 differs)")
    runtime_name, device = rt.parse_runtime(runtime)
    rt.require(runtime_name, device)  # here, on the driver: workers are set up alike
    return graph_file, export_dir / manifest.get("checkpoint", "model.pt")


def _plan_workers(cpus: float, workers: int, threads: int | None, reads: bool) -> tuple[int, float]:
    """``(runtime threads per actor, the CPUs each actor asks Ray for)``.

    Threads × actors may not exceed the CPUs Ray has: more would only make them fight. The actors'
    CPU request leaves one CPU free when Ray reads the input (a read task needs a whole one)."""
    available = int(cpus)
    if threads is None:
        threads = max(1, available // workers)
    if workers * threads > available:
        raise UsageError(
            f"{workers} workers × {threads} threads need {workers * threads} CPUs; Ray has "
            f"{available}. Use fewer workers or threads"
        )
    ask = float(threads)
    if reads and workers * threads > available - 1:
        ask = max(available - 1, 1) / workers if available > 1 else 0.5 / workers
        ask = math.floor(ask) if ask >= 1 else round(ask, 4)  # Ray: fractions only below 1
    return threads, ask


@contextlib.contextmanager
def _ray(address: str | None) -> Iterator[float]:
    """Ray for this job: joined at ``address``, or the one this process already runs, or a
    private local one (no dashboard) that is shut down afterwards. Yields the seconds it took."""
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")  # read when ray.data is imported
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report (often no internet)
    if not log.isEnabledFor(logging.DEBUG):
        # Ray's C++ core logs a warning about actor arguments (ray-project/ray#53727) on every
        # job, which Python's logging cannot reach; real failures still raise in Python
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    import ray
    import ray.data

    started = time.perf_counter()
    owned = not ray.is_initialized()
    if owned:
        options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
        if address is None:
            options.update(num_cpus=os.cpu_count(), include_dashboard=False)
        log.info("starting Ray%s", f" at {address}" if address else " (local)")
        ray.init(address=address, **options)
    elif address is not None:
        raise UsageError(f"Ray is already running in this process; cannot also join {address}")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver shows its own bar, in rows
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    context.execution_options.preserve_order = True
    context.execution_options.verbose_progress = False
    context.execution_no_progress_timeout_s = NO_PROGRESS_TIMEOUT_S
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    try:
        yield time.perf_counter() - started
    finally:
        if owned:
            ray.shutdown()


# --- input -------------------------------------------------------------------------------------


def describe_input(
    path: Path, expected_width: int, column: str | None = None, input_name: str = "x"
) -> InputSpec:
    """Format, rows, width and columns of INPUT, read from headers and metadata only; a
    ``ValueError`` if it is not readable or its width is not ``expected_width``."""
    if path.is_dir() or path.suffix == ".parquet":
        spec = _describe_parquet(path, column, input_name)
    elif path.suffix in (".npy", ".csv"):
        if column is not None:
            raise UsageError(f"--column applies to Parquet input, not {path.suffix}")
        spec = _describe_npy(path) if path.suffix == ".npy" else _describe_csv(path)
    else:
        raise UsageError(f"input {path}: expected .npy, .csv, or a Parquet file or folder")
    if spec.width != expected_width:
        raise UsageError(
            f"input {path}: rows have {spec.width} values, the graph expects {expected_width}"
        )
    if spec.rows == 0:
        raise UsageError(f"input {path}: no rows")
    return spec


def _describe_npy(path: Path) -> InputSpec:
    rows = count_data_rows(path)  # a checked [N, n] array
    data = np.load(path, mmap_mode="r")
    if data.dtype.kind not in "fiu":
        raise UsageError(f"input {path}: values must be numbers, got {data.dtype}")
    return InputSpec(path.resolve(), "npy", rows, int(data.shape[1]), (), None)


def _describe_csv(path: Path) -> InputSpec:
    header = csv_header_rows(path) == 1
    with open(path) as handle:
        first = handle.readline().strip().split(",")
    names = [name.strip() for name in first] if header else [f"f{i}" for i in range(len(first))]
    id_column = "id" if "id" in names else None
    columns = tuple(name for name in names if name != id_column)
    return InputSpec(path.resolve(), "csv", count_data_rows(path), len(columns), columns,
                     id_column, csv_header=header)  # fmt: skip


def _describe_parquet(path: Path, column: str | None, input_name: str) -> InputSpec:
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise UsageError(f"input {path}: no .parquet files in this folder")
    try:
        schema = pq.read_schema(files[0])
        rows = sum(pq.read_metadata(file).num_rows for file in files)
    except (OSError, pa.ArrowException) as error:
        raise UsageError(f"input {path}: not readable as Parquet ({error})") from error
    id_column = "id" if "id" in schema.names else None
    lists = [f.name for f in schema if pa.types.is_list(f.type) or pa.types.is_fixed_size_list(f.type)
             or pa.types.is_large_list(f.type)]  # fmt: skip
    if column is None and input_name in lists:
        column = input_name
    if column is None and len(lists) == 1:
        column = lists[0]
    if column is not None:
        if column not in lists:
            raise UsageError(
                f"input {path}: no list column {column!r}; list columns: {lists or 'none'}"
            )
        width = _list_width(files[0], schema.field(column).type, column)
        return InputSpec(path.resolve(), "parquet", rows, width, (column,), id_column)
    numeric = tuple(
        f.name for f in schema
        if f.name != id_column and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))
    )  # fmt: skip
    if not numeric:
        raise UsageError(f"input {path}: no numeric columns and no list column of features")
    return InputSpec(path.resolve(), "parquet", rows, len(numeric), numeric, id_column)


def _list_width(file: Path, field_type: Any, column: str) -> int:
    """The length of a list column's rows: fixed by its type, or else the first row's (each
    batch is checked again on a worker)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if pa.types.is_fixed_size_list(field_type):
        return field_type.list_size
    first = pq.ParquetFile(file).read_row_group(0, columns=[column]).column(0)
    return len(first[0]) if len(first) else 0


def _dataset(source: InputSpec, batch_size: int, workers: int) -> Any:
    """The Ray dataset of INPUT. A ``.npy`` is not read by Ray at all: the dataset holds the row
    numbers (made here), and each actor reads its rows from the memory-mapped file."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import ray.data

    if source.kind == "npy":
        step = batch_size * BLOCKS_PER_BATCH
        ids = np.arange(source.rows, dtype=np.int64)
        return ray.data.from_arrow(
            [pa.table({"_row": ids[start : start + step]}) for start in range(0, source.rows, step)]
        )
    # enough blocks for every actor to get work, as many as the .npy path makes
    blocks = max(workers, math.ceil(source.rows / (batch_size * BLOCKS_PER_BATCH)))
    read_columns = [*source.columns, *([source.id_column] if source.id_column else [])]
    if source.kind == "parquet":
        parquet = ray.data.read_parquet(str(source.path), override_num_blocks=blocks)
        return parquet.select_columns(read_columns)
    read_options = pacsv.ReadOptions(
        column_names=None if source.csv_header else list(source.columns)
    )
    return ray.data.read_csv(
        str(source.path), read_options=read_options, override_num_blocks=blocks
    )


# --- the workers -------------------------------------------------------------------------------


class _GraphWorker:
    """One Ray actor: one runtime session, built once; called with one batch at a time."""

    def __init__(
        self, shipped: Any, graph_name: str, runtime: str, threads: int, source: InputSpec,
        nonfinite: str,
    ):  # fmt: skip
        import ray

        files = ray.get(shipped) if isinstance(shipped, ray.ObjectRef) else shipped
        self._folder = tempfile.TemporaryDirectory(prefix="iresnet-onnx-batch-")
        for name, content in files.items():
            Path(self._folder.name, name).write_bytes(content)
        options = {"threads": threads} if runtime.startswith(("onnxruntime", "openvino")) else {}
        self.session = rt.load(Path(self._folder.name, graph_name), runtime, **options)
        self.source = source
        self.nonfinite = nonfinite
        self.output = self.session.graph.main
        self.rows = np.load(source.path, mmap_mode="r") if source.kind == "npy" else None
        self.pid = os.getpid()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        values = self._features(batch)
        count = len(values)
        valid = np.isfinite(values).all(axis=1)
        converged = np.ones(count, bool)
        dtype = self.session.info.dtype
        shape = (count, values.shape[1]) if self.output != "log_prob" else (count,)
        result = np.full(shape, np.nan, dtype)
        if valid.all() or (self.nonfinite == "flag" and valid.any()):
            rows = values if valid.all() else values[valid]
            computed, row_converged = self._run(rows)
            result[valid] = computed
            converged[valid] = row_converged
        out = {
            self.output: result,
            "_valid": valid,
            "_converged": converged,
            "_pid": np.full(count, self.pid, np.int64),
            "_busy": np.full(count, (time.perf_counter() - started) / count),
        }
        if "_row" in batch:
            out["id"] = batch["_row"]
        elif self.source.id_column:
            out["id"] = np.asarray(batch[self.source.id_column], np.int64)
        return out

    def _features(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        dtype = self.session.info.dtype
        if self.rows is not None:  # .npy: the batch holds consecutive row numbers
            first, last = int(batch["_row"][0]), int(batch["_row"][-1])
            return np.ascontiguousarray(self.rows[first : last + 1], dtype=dtype)
        columns = self.source.columns
        if len(columns) == 1 and self.source.kind == "parquet":
            cells = batch[columns[0]]
            if cells.dtype == object:  # variable-length lists: one array per row
                widths = {len(cell) for cell in cells}
                if widths != {self.source.width}:
                    raise UsageError(
                        f"input {self.source.path}: column {columns[0]!r} has rows of "
                        f"{sorted(widths)} values; the graph expects {self.source.width}"
                    )
                cells = np.stack(cells)
            return np.ascontiguousarray(cells, dtype=dtype).reshape(len(cells), -1)
        return np.ascontiguousarray(np.column_stack([batch[name] for name in columns]), dtype=dtype)

    def _run(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The main output of the graph for finite ``rows``, and which rows converged (an
        inverse's per-block residual is the worst row's: only when it misses its tolerance are
        the rows run one by one to find which ones did)."""
        outputs = self.session.run_all(rows)
        result = outputs[self.output]
        converged = np.isfinite(result).reshape(len(rows), -1).all(axis=1)
        if "residual" in outputs and not self._met(outputs):
            converged &= [self._met(self.session.run_all(row[None])) for row in rows]
        return result, converged

    def _met(self, outputs: dict[str, np.ndarray]) -> bool:
        return bool((outputs["residual"] <= self.session.info.atol).all())


# --- output ------------------------------------------------------------------------------------


def _drain(
    results: Any, sink: "_Sink", summary: BatchSummary, source: InputSpec, nonfinite: str,
    progress: bool, on_batch: Callable[[BatchProgress], None] | None,
) -> None:  # fmt: skip
    """Read the result batches in order on the driver, check them, write them, show progress."""
    done = 0
    with tqdm(total=source.rows, desc=f"batch {summary.graph}", unit="row", disable=not progress,
              unit_scale=True) as bar:  # fmt: skip
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            count = len(batch["_pid"])
            valid = batch["_valid"]
            if not valid.all():
                first = int(np.argmin(valid))
                where = (f"id {batch['id'][first]}" if source.id_column
                         else f"row {done + first}")  # fmt: skip
                if nonfinite == "reject":
                    raise UsageError(
                        f"input {source.path}: {where} holds NaN or Inf; nothing was written "
                        "(nonfinite='flag' / --nonfinite flag skips such rows instead)"
                    )
                summary.nonfinite += int((~valid).sum())
            summary.not_converged += int((~batch["_converged"] & valid).sum())
            ids = batch["id"] if "id" in batch else np.arange(done, done + count, dtype=np.int64)
            if source.kind == "npy" and not (ids[0] == done and ids[-1] == done + count - 1):
                # row numbers are made on the driver: any other order means Ray broke its promise
                raise RuntimeError(f"Ray returned rows {ids[0]}… where row {done} was due")
            sink.write(done, ids, batch)
            for pid in np.unique(batch["_pid"]).tolist():
                mine = batch["_pid"] == pid
                stats = summary.workers.setdefault(pid, WorkerStats())
                stats.rows += int(mine.sum())
                stats.busy_seconds += float(batch["_busy"][mine].sum())
            done += count
            bar.update(count)
            if on_batch is not None:
                on_batch(BatchProgress(done, source.rows, int(batch["_pid"][0])))
    if done != source.rows:  # Ray lost or repeated rows: never write such an output
        raise RuntimeError(f"Ray returned {done} rows for {source.rows} input rows")


class _Sink:
    def write(self, start: int, ids: np.ndarray, batch: dict[str, np.ndarray]) -> None: ...

    def close(self) -> None: ...


def _sink(path: Path, suffix: str, rows: int, info: Any, graph: str, nonfinite: str) -> _Sink:
    if suffix == ".npy":
        return _NpySink(path, rows, info, graph)
    return _ParquetSink(path, graph, nonfinite)


class _NpySink(_Sink):
    """The main output only, row i of the input at row i."""

    def __init__(self, path: Path, rows: int, info: Any, graph: str):
        shape = (rows,) if graph == "density" else (rows, info.input_size)
        self.name = GRAPHS[graph].main
        self.array = np.lib.format.open_memmap(path, mode="w+", dtype=info.dtype, shape=shape)

    def write(self, start: int, ids: np.ndarray, batch: dict[str, np.ndarray]) -> None:
        values = batch[self.name]
        self.array[start : start + len(values)] = values

    def close(self) -> None:
        self.array.flush()
        del self.array


class _ParquetSink(_Sink):
    """``id``, the output (a fixed-size list column for vectors), ``converged`` for an inverse,
    ``valid`` when non-finite rows are flagged."""

    def __init__(self, path: Path, graph: str, nonfinite: str):
        import pyarrow.parquet as pq

        self.path, self.graph, self.nonfinite = path, graph, nonfinite
        self.name = GRAPHS[graph].main
        self.writer: pq.ParquetWriter | None = None

    def write(self, start: int, ids: np.ndarray, batch: dict[str, np.ndarray]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        values = batch[self.name]
        if values.ndim == 2:
            column = pa.FixedSizeListArray.from_arrays(
                pa.array(values.reshape(-1)), values.shape[1]
            )
        else:
            column = pa.array(values)
        table = {"id": pa.array(ids, pa.int64()), self.name: column}
        if self.graph == "inverse":
            table["converged"] = pa.array(batch["_converged"] & batch["_valid"])
        if self.nonfinite == "flag":
            table["valid"] = pa.array(batch["_valid"])
        table = pa.table(table)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
