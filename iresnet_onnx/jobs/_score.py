"""``iresnet-onnx score``: log p(x) of every row of a data set, through an export's density.onnx,
in this process.

Runs on any runtime, without torch. Before any work: the export's density.onnx is checked against
the manifest, the runtime must be able to run it, the data set is described (rows, width, a CSV's
lines) and the output checked (not the input, space for a ``.npy``). Then the rows stream through
one session in chunks under a progress bar, and the scores are written atomically: a failed or
interrupted run leaves no partial output, and a previous output as it was.
"""

import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .. import runtimes as rt
from ..errors import UsageError
from ..graphs import DENSITY
from ._chunks import NONFINITE_POLICIES, Tally, run_chunk
from ._inputs import describe_input, read_chunks
from ._integrity import checked_export
from ._sinks import Columns, check_output, open_sink

__all__ = ["ScoreSummary", "score_file"]


@dataclass
class ScoreSummary:
    rows: int
    seconds: float
    runtime: str
    out: Path
    skipped: int = 0
    """Rows with NaN or Inf skipped (``nonfinite="flag"``; their score is NaN)."""
    nonfinite_results: int = 0
    """Finite rows whose score is NaN or Inf (named in a warning)."""

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
    nonfinite: str = "warn",
    column: str | None = None,
    progress: bool = True,
) -> ScoreSummary:
    """Write log p of each row of ``data`` to ``out``, in row order.

    Args:
        export_dir: an export folder; its density.onnx must match the manifest
            (:class:`~iresnet_onnx.errors.VerificationError` otherwise).
        data: ``.npy`` [N, n], ``.csv`` (optional header, ``#`` comments, an optional ``id``
            column) or a Parquet file or folder (see :func:`~iresnet_onnx.jobs.run_batch`).
        out: ``.npy`` (the scores), ``.csv`` or ``.parquet`` (a ``log_prob`` column, and ``valid``
            with ``nonfinite="flag"``); replaced if it exists, never when it is ``data``.
        nonfinite: ``"warn"`` (rows with NaN or Inf are refused; scores that overflow are
            written and named in a warning), ``"reject"`` (both refused) or ``"flag"`` (such
            rows skipped with a NaN score); see :mod:`iresnet_onnx.jobs._chunks`.
        column: the Parquet list column of features.

    Returns:
        A :class:`ScoreSummary`. A row that cannot be used is a
        :class:`~iresnet_onnx.errors.DataError` naming the file and the row; nothing is written.
    """
    export_dir, data, out = Path(export_dir), Path(data), Path(out)
    if nonfinite not in NONFINITE_POLICIES:
        raise UsageError(
            f"nonfinite={nonfinite!r}: expected one of {', '.join(NONFINITE_POLICIES)}"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size={batch_size!r}: expected a positive integer")
    check_output(out, (data,))
    checked = checked_export(export_dir, DENSITY.name, runtime)
    with rt.load(checked.graph_file, runtime) as session:
        info = session.info
        source = describe_input(data, info.input_size, column=column, input_name=DENSITY.input,
                                every=batch_size)  # fmt: skip
        columns = Columns(DENSITY.main, None, info.dtype,
                          flags=("valid",) if nonfinite == "flag" else ())  # fmt: skip
        tally = Tally(source.path, nonfinite, DENSITY, info.dtype.name)
        started = time.perf_counter()
        with open_sink(out, source.rows, columns) as sink, tqdm(
            total=source.rows, desc="score", unit="row", disable=not progress
        ) as bar:  # fmt: skip
            for chunk in read_chunks(source, batch_size, info.dtype):
                outcome = run_chunk(session, chunk, nonfinite)
                tally.add(outcome, chunk.ids)
                sink.write(outcome.output, flags={"valid": outcome.valid})
                bar.update(len(outcome.output))
        seconds = time.perf_counter() - started
    tally.warn(out)
    return ScoreSummary(tally.rows, seconds, session.name, out, tally.skipped,
                        tally.nonfinite_results)  # fmt: skip
