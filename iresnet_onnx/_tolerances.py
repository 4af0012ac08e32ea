"""How an exported graph's results are held against a reference: the tolerances, and the rule for
step counts. Shared by the parity suite (reference: eager PyTorch) and the golden
vectors (reference: eager outputs stored at export), so it needs neither torch nor a runtime.

Tolerances (per row, times max(1, |expected|∞)): forward 1e-5, inverse, capped, round trip, density
(log p) and jacobian (the log-det against autograd's full Jacobian) 1e-4 in float32; 1e-12 and
1e-9 in float64. Step counts must be the reference's exactly
(a graph that tests every K steps: rounded up to a multiple of K, and then the x tolerance admits
the K − 1 steps a row may run past its own stop, each moving x by at most atol + rtol·|x|∞ — a
block's slowest row may stop at eager's count while the others ran on); one test apart is admitted only
for a block whose final residual lies within rounding of atol on either side — |residual − atol| ≤
16·eps·max(1, |x|∞) — and then the x tolerance also admits those steps (each moves x by at most
atol + rtol·|x|∞). Converged flags (residual ≤ atol; NaN is never converged) must agree likewise.
"""

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._report import ParityRow

__all__ = ["BOUNDARY_ULPS", "TOLERANCES", "StepRule", "compare"]

TOLERANCES = {
    "float32": {
        "forward": 1e-5, "inverse": 1e-4, "capped": 1e-4, "roundtrip": 1e-4,
        "density": 1e-4, "jacobian": 1e-4,
    },
    "float64": {
        "forward": 1e-12, "inverse": 1e-9, "capped": 1e-9, "roundtrip": 1e-9,
        "density": 1e-9, "jacobian": 1e-9,
    },
}  # fmt: skip
BOUNDARY_ULPS = 16
"""How close to atol (in units of eps·max(1, |x|∞)) a residual lies "within rounding" of it."""


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def scale(a: np.ndarray) -> float:
    return max(1.0, float(np.max(np.abs(a)))) if a.size else 1.0


def compare(
    name: str,
    check: str,
    shape: tuple[int, ...],
    actual: np.ndarray,
    expected: np.ndarray,
    tolerance: dict[str, float],
    seconds: float,
) -> ParityRow:
    error = max_abs(actual, expected)
    limit = tolerance[check] * scale(expected)
    return ParityRow(
        name,
        check,
        list(shape),
        error,
        error / scale(expected),
        limit,
        error <= limit,
        seconds,
    )


@dataclass
class StepRule:
    """Whether an inverse graph stopped each block where eager did (see the module docstring)."""

    k: int
    solver: dict[str, Any]
    eps: float

    def judge(
        self,
        row: ParityRow,
        outputs: dict[str, np.ndarray],
        eager: dict[str, np.ndarray],
        options: dict[str, Any],
    ) -> None:
        """Set the row's step counts; fail it on a wrong count or flag, widen its limit where a
        block stopped one test away from eager on the boundary."""
        settings = {**self.solver, **options}
        steps, eager_steps = outputs["iterations"].tolist(), eager["iterations"].tolist()
        row.iterations, row.eager_iterations = steps, eager_steps
        if len(steps) != len(eager_steps):
            row.passed = False
            return
        steps_ok = True
        atol, rtol = settings["atol"], settings["rtol"]
        x = eager["x"]
        magnitude = float(np.max(np.abs(x))) if x.size else 0.0
        band = BOUNDARY_ULPS * self.eps * max(1.0, magnitude)
        maxiter = settings["maxiter"]
        widen = 0
        for taken, eager_taken, residual, eager_residual in zip(
            steps, eager_steps, outputs["residual"].tolist(), eager["residual"].tolist()
        ):
            on_boundary = any(abs(r - atol) <= band for r in (residual, eager_residual))
            expected = self.graph_steps(eager_taken, maxiter)
            converged, eager_converged = residual <= atol, eager_residual <= atol
            if taken == expected:
                ok = converged == eager_converged or on_boundary
            else:  # one step apart in eager, on the boundary: one test apart in the graph
                nearby = {self.graph_steps(eager_taken + d, maxiter) for d in (-1, 1)}
                ok = taken in nearby and on_boundary
            # steps past eager's stop (K > 1, or the boundary) move x on, each by at most the
            # last change: atol + rtol·|x|. With K > 1 every row may run up to K − 1 steps past
            # its own eager stop, also where the block's slowest row stops at the same count
            widen = max(widen, abs(taken - eager_taken), self.k - 1)
            steps_ok = steps_ok and ok
        if widen:
            row.tolerance += widen * (atol + rtol * magnitude)
        row.passed = steps_ok and row.max_abs <= row.tolerance

    def graph_steps(self, eager_steps: int, maxiter: int) -> int:
        """The steps a graph testing every K steps takes where eager takes ``eager_steps``: the next
        multiple of K while whole K-step turns fit in maxiter, then (the rest of maxiter, tested
        every step) eager's own count."""
        turns = -(-eager_steps // self.k) * self.k
        return turns if turns <= (maxiter // self.k) * self.k else min(eager_steps, maxiter)
