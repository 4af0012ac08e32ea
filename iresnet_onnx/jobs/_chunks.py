"""One chunk of rows through a graph, the same in ``score`` and in a ``batch`` worker, and the
driver's verdict on each chunk's outcome, in row order.

Non-finite rows, one rule for both jobs (``nonfinite``):

==========  ====================================  =============================================
policy      a row that holds NaN or Inf           a finite row whose output is NaN or Inf
==========  ====================================  =============================================
``reject``  the job stops naming it               the job stops naming it
``warn``    the job stops naming it               written as computed; a warning names the rows
``flag``    skipped: output NaN, ``valid`` false  written as computed; a warning names the rows
==========  ====================================  =============================================

A row that cannot be read at all (not numbers, a ragged list, a null) always stops the job. A
stopped job writes nothing.
"""

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..graphs import Graph
from ._inputs import Chunk

__all__ = ["NONFINITE_POLICIES", "Outcome", "Tally", "run_chunk"]

NONFINITE_POLICIES = ("reject", "warn", "flag")
EXAMPLES = 5
"""Rows named in the warning about non-finite outputs."""


@dataclass
class Outcome:
    """What one chunk gave: the main output, and per row what the driver judges."""

    output: np.ndarray
    """The main output, ``[rows]`` or ``[rows, n]``; NaN for rows that were not run."""
    valid: np.ndarray
    """The row was run (its input is finite)."""
    finite: np.ndarray
    """Its output is finite."""
    converged: np.ndarray
    """An inverse row met the graph's tolerance (always true for the other graphs)."""
    problem: tuple[int, str] | None = None
    """The chunk's first row that cannot be read, and why."""


def run_chunk(session: Any, chunk: Chunk, nonfinite: str) -> Outcome:
    """Run ``session`` on the rows of ``chunk`` that it can run under the ``nonfinite`` policy."""
    info, graph = session.info, session.graph
    count = len(chunk.values)
    shape = graph.output_shape(graph.main, count, info.input_size, info.nblocks)
    output = np.full(shape, np.nan, info.dtype)
    valid = chunk.finite if chunk.problem is None else np.zeros(count, bool)
    finite = np.ones(count, bool)
    converged = np.zeros(count, bool)
    if chunk.problem is None and valid.any() and (valid.all() or nonfinite == "flag"):
        rows = chunk.values if valid.all() else chunk.values[valid]
        outputs = session.run_all(rows)
        result = outputs[graph.main]
        output[valid] = result
        row_finite = np.isfinite(result).reshape(len(rows), -1).all(axis=1)
        finite[valid] = row_finite
        converged[valid] = row_finite & _converged(session, rows, outputs)
    return Outcome(output, valid, finite, converged, chunk.problem)


def _converged(session: Any, rows: np.ndarray, outputs: dict[str, np.ndarray]) -> np.ndarray:
    """Which rows met the tolerance. An inverse's per-block residual is the worst row's: only when
    it misses are the rows run one by one to find which ones did."""
    if "residual" not in outputs or _met(session, outputs):
        return np.ones(len(rows), bool)
    return np.array([_met(session, session.run_all(row[None])) for row in rows], bool)


def _met(session: Any, outputs: dict[str, np.ndarray]) -> bool:
    return bool((outputs["residual"] <= session.info.atol).all())


@dataclass
class Tally:
    """The driver's count of a job, chunk by chunk in row order; raises the job's
    :class:`DataError` at the first row the policy refuses."""

    source: Path
    nonfinite: str
    graph: Graph | None = None
    """The graph run (None where none is: ``train`` only reads)."""
    dtype: str = "float32"
    rows: int = 0
    skipped: int = 0
    """Rows with NaN or Inf that were skipped (``flag``)."""
    not_converged: int = 0
    nonfinite_results: int = 0
    """Finite rows whose output is NaN or Inf."""
    examples: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome, ids: np.ndarray | None = None) -> None:
        """Judge the next chunk; its rows follow the rows judged so far."""
        if outcome.problem is not None:
            index, reason = outcome.problem
            raise DataError(
                f"input {self.source}: {self._row(index, ids)}: {reason}; nothing was written"
            )
        skipped = ~outcome.valid
        if skipped.any():
            if self.nonfinite != "flag":
                raise DataError(
                    f"input {self.source}: {self._row(int(np.argmax(skipped)), ids)} holds NaN "
                    "or Inf (values must be finite numbers); nothing was written "
                    "(--nonfinite flag / nonfinite='flag' skips such rows)"
                )
            self.skipped += int(skipped.sum())
        overflowed = outcome.valid & ~outcome.finite
        if overflowed.any():
            if self.nonfinite == "reject":
                raise DataError(
                    f"input {self.source}: {self._row(int(np.argmax(overflowed)), ids)}: its "
                    f"{self.graph.main} is NaN or Inf (the {self.graph.name} graph overflows "
                    f"{self.dtype} on it); nothing was written (--nonfinite warn writes such "
                    "rows and warns)"
                )
            self.nonfinite_results += int(overflowed.sum())
            for index in np.flatnonzero(overflowed)[: EXAMPLES - len(self.examples)].tolist():
                self.examples.append(self._row(index, ids))
        self.not_converged += int((outcome.valid & ~outcome.converged).sum())
        self.rows += len(outcome.valid)

    def _row(self, index: int, ids: np.ndarray | None) -> str:
        name = f"row {self.rows + index}"
        return f"{name} (id {int(ids[index])})" if ids is not None else name

    def warn(self, out: Path) -> None:
        """After the job: a warning naming the rows whose output is not finite, if any."""
        if not self.nonfinite_results:
            return
        more = ", …" if self.nonfinite_results > len(self.examples) else ""
        warnings.warn(
            f"{out}: {self.nonfinite_results} rows have a NaN or Inf {self.graph.main} "
            f"({', '.join(self.examples)}{more}): the {self.graph.name} graph overflows "
            f"{self.dtype} on them",
            RuntimeWarning,
            stacklevel=3,
        )
