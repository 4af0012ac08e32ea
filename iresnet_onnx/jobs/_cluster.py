"""Ray for one ``batch`` job: started (or joined) quietly, its CPUs planned, the data set as Ray
sees it, and what Ray raises turned back into the package's one-line errors.

A local Ray that the job starts is private to it: no dashboard, its session files in a temporary
folder that goes with it (not ``/tmp/ray``), shut down when the job ends, however it ends.
"""

import contextlib
import logging
import math
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .. import errors
from ..errors import DataError, UsageError
from ._inputs import InputSpec

__all__ = ["dataset_of", "job_ray", "plan_local_workers", "plan_workers", "reraised"]

log = logging.getLogger(__name__)

NO_PROGRESS_TIMEOUT_S = 600.0
"""Ray Data's own default is 30 minutes of silence before it gives up on a stuck job."""
BLOCKS_PER_BATCH = 8
"""Rows per Ray block of row numbers, in batches: few enough blocks to keep Ray's per-block
overhead small, enough to spread over the actors."""
_PACKAGE_ERROR = re.compile(r"^iresnet_onnx\.errors\.(\w+): (.+)$", re.MULTILINE)
_READ_ERROR = re.compile(r"^(?:pyarrow\.lib\.)?(Arrow\w*Error|OSError): (.+)$", re.MULTILINE)
_RAY_LOG_LEVEL_LINE = "logging.cc"
"""Ray's C++ core says on stderr that it read RAY_BACKEND_LOG_LEVEL — the very setting that keeps
it quiet — before any Python logging can reach it."""


def plan_workers(cpus: float, workers: int, threads: int | None, reads: bool) -> tuple[int, float]:
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


def plan_local_workers(address: str | None, workers: int, threads: int | None) -> None:
    """Where the job will start its own local Ray, its CPUs are this machine's: check the plan
    before Ray starts (the plan is made again, against Ray's own count, once it runs)."""
    running = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    if address is None and not running:
        plan_workers(os.cpu_count() or 1, workers, threads, reads=False)


@contextlib.contextmanager
def job_ray(address: str | None) -> Iterator[float]:
    """Ray for this job: joined at ``address``, or the one this process already runs, or a
    private local one that is shut down afterwards. Yields the seconds it took."""
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")  # read when ray.data is imported
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report (often no internet)
    quiet = not log.isEnabledFor(logging.DEBUG)
    if quiet:
        # Ray's C++ core logs a warning about actor arguments (ray-project/ray#53727) on every
        # job, which Python's logging cannot reach; real failures still raise in Python
        os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    import ray
    import ray.data

    started = time.perf_counter()
    owned = not ray.is_initialized()
    if not owned and address is not None:
        raise UsageError(f"Ray is already running in this process; cannot also join {address}")
    folder = None
    if owned and address is not None:
        _check_reachable(address)
    if owned:
        options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
        if address is None:
            folder = tempfile.mkdtemp(prefix="iresnet-onnx-ray-", dir=_short_tmp())
            options.update(num_cpus=os.cpu_count(), include_dashboard=False, _temp_dir=folder)
        log.info("starting Ray%s", f" at {address}" if address else " (local)")
    try:
        if owned:
            with _stderr_without(_RAY_LOG_LEVEL_LINE if quiet else None):
                ray.init(address=address, **options)
        _configure_ray_data()
        yield time.perf_counter() - started
    finally:
        if owned:
            ray.shutdown()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _check_reachable(address: str) -> None:
    """A ``host:port`` (or ``ray://host:port``) where nothing answers is a :class:`UsageError`
    now: ``ray.init`` would retry for minutes. Other forms (``auto``) are Ray's to resolve."""
    host, colon, port = address.removeprefix("ray://").rpartition(":")
    if not colon or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UsageError(f"--address {address}: no Ray cluster answers there ({reason})") from None


def _short_tmp() -> str | None:
    """Ray's sockets live in its session folder, and a socket path may not pass 107 bytes."""
    return "/tmp" if os.path.isdir("/tmp") else None


def _configure_ray_data() -> None:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver shows its own bar, in rows
    context.enable_operator_progress_bars = False
    context.print_on_execution_start = False
    context.execution_options.preserve_order = True
    context.execution_options.verbose_progress = False
    context.execution_no_progress_timeout_s = NO_PROGRESS_TIMEOUT_S
    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # failures are raised, in one line


@contextlib.contextmanager
def _stderr_without(marker: str | None) -> Iterator[None]:
    """File descriptor 2 (where C++ code writes) through a temporary file; its lines come back
    on ``sys.stderr`` afterwards, less those that hold ``marker``."""
    if marker is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = captured.read().decode(errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if marker not in line))


def dataset_of(source: InputSpec, batch_size: int, workers: int) -> Any:
    """The Ray dataset of the input. A ``.npy`` or CSV is not read by Ray at all: the dataset holds
    the row numbers (made here), and each actor reads its rows from the file itself, with the same
    reader as ``score``; Parquet is read by Ray, the file's columns only."""
    import pyarrow as pa
    import ray.data

    if source.kind in ("npy", "csv"):
        step = batch_size * BLOCKS_PER_BATCH
        rows = np.arange(source.rows, dtype=np.int64)
        # from_blocks describes the blocks here; from_arrow would run a remote task for that,
        # which waits for a worker process to start before the job can begin
        return ray.data.from_blocks(
            [
                pa.table({"_row": rows[start : start + step]})
                for start in range(0, source.rows, step)
            ]
        )
    # enough blocks for every actor to get work, as many as the row-number datasets make
    blocks = max(workers, math.ceil(source.rows / (batch_size * BLOCKS_PER_BATCH)))
    layout = source.parquet
    files = [str(file) for file in layout.files]
    dataset = ray.data.read_parquet(files, override_num_blocks=blocks)
    return dataset.select_columns(layout.read_columns)


@contextlib.contextmanager
def reraised(source: Path) -> Iterator[None]:
    """What Ray raises from a worker, as the error it was: a package error that a worker raised
    comes back as its own type and line, a read error as a :class:`DataError` naming the input."""
    import ray.exceptions

    try:
        yield
    except ray.exceptions.RayError as error:
        text = str(error)
        found = _PACKAGE_ERROR.findall(text)
        kind = getattr(errors, found[-1][0], None) if found else None
        if isinstance(kind, type) and issubclass(kind, errors.IresnetOnnxError):
            raise kind(found[-1][1]) from None
        read = _READ_ERROR.findall(text)
        if read:
            raise DataError(f"input {source}: cannot be read: {read[-1][1]}") from None
        raise
