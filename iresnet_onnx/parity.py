"""The parity suite: an exported model against eager PyTorch, on any runtime, with numbers.

For every runtime and batch size, on fresh random inputs (never the export's shapes), ``check`` runs

``forward``    ONNX ``y`` vs eager ``y``                        ≤ tol_f · max(1, |y|∞)
``inverse``    ONNX ``x`` vs eager ``x`` (model's solver settings) ≤ tol_i · max(1, |x|∞)
               and the per-block step counts: equal up to one step (rounding can move the stop);
               a graph exported with ``steps_per_check = K`` tests every K steps, so it may take
               up to K steps more than eager (K − 1, plus one turn where rounding moves the stop),
               never fewer; blocks that took the same steps agree on residual ≤ atol
``roundtrip``  eager f(ONNX f⁻¹(y)) vs y, solved tightly          ≤ tol_r · max(1, |y|∞)

with tol_f, tol_i, tol_r = 1e-5, 1e-4, 1e-4 in float32 and 1e-12, 1e-9, 1e-9 in float64. Where a
runtime stops a block some steps away from eager, the inverse tolerance also admits those steps
(each moves x by at most atol + rtol·|x|∞, as the steps shrink): the two results are then both
valid answers of the same solver. The round trip
runs the inverse with tolerances near rounding level (float32: atol 1e-7, rtol 1e-6), so it checks
that the graph inverts f, whatever tolerances the model was trained with.
"""

import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import runtimes as rt
from .errors import ParityError
from .iresnet import ConvergenceWarning, iResNet, iResNetBlock
from .runtimes.eager import EagerSession

__all__ = ["TOLERANCES", "ParityError", "ParityReport", "ParityRow", "assert_parity", "check"]

TOLERANCES = {
    "float32": {"forward": 1e-5, "inverse": 1e-4, "roundtrip": 1e-4},
    "float64": {"forward": 1e-12, "inverse": 1e-9, "roundtrip": 1e-9},
}
# the round trip's solver: tight enough that its error is rounding, not the stopping rule
ROUNDTRIP_SOLVER = {
    "float32": {"atol": 1e-7, "rtol": 1e-6},
    "float64": {"atol": 1e-14, "rtol": 1e-13},
}
ROUNDTRIP_MAXITER_FACTOR = 10
DEFAULT_BATCH_SIZES = (1, 7, 257)
LEADING_DIMS = (2, 3)


@dataclass
class ParityRow:
    runtime: str
    direction: str
    shape: list[int]
    max_abs: float
    max_rel: float
    tolerance: float
    passed: bool
    seconds: float
    iterations: list[int] | None = None
    eager_iterations: list[int] | None = None

    def describe(self) -> str:
        text = (
            f"{self.runtime} {self.direction} on {self.shape}: max|Δ| {self.max_abs:.3g} "
            f"(rel {self.max_rel:.3g}), tolerance {self.tolerance:.3g}"
        )
        if self.iterations is not None:
            text += f", steps {self.iterations} vs eager {self.eager_iterations}"
        return text


@dataclass
class ParityReport:
    export_dir: str
    dtype: str
    spectral_norm: str
    seed: int
    tolerances: dict[str, float]
    rows: list[ParityRow] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(row.passed for row in self.rows)

    @property
    def failures(self) -> list[ParityRow]:
        return [row for row in self.rows if not row.passed]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def summary(self) -> dict[str, dict[str, float]]:
        """Per runtime and direction, the largest error and the smallest margin to the tolerance."""
        result: dict[str, dict[str, float]] = {}
        for row in self.rows:
            key = f"{row.runtime} {row.direction}"
            entry = result.setdefault(key, {"max_abs": 0.0, "max_rel": 0.0, "worst_ratio": 0.0})
            entry["max_abs"] = max(entry["max_abs"], row.max_abs)
            entry["max_rel"] = max(entry["max_rel"], row.max_rel)
            entry["worst_ratio"] = max(entry["worst_ratio"], row.max_abs / row.tolerance)
        return result

    def table(self) -> str:
        header = ("runtime", "direction", "shape", "max|Δ|", "rel", "tolerance", "steps", "ok")
        lines = [header]
        for row in self.rows:
            steps = "" if row.iterations is None else f"{row.iterations} vs {row.eager_iterations}"
            lines.append((
                row.runtime, row.direction, "×".join(map(str, row.shape)), f"{row.max_abs:.2e}",
                f"{row.max_rel:.2e}", f"{row.tolerance:.1e}", steps, "yes" if row.passed else "NO",
            ))  # fmt: skip
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        rendered = [
            "  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines
        ]
        return "\n".join([rendered[0], "  ".join("-" * w for w in widths), *rendered[1:]])

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else f"FAILED ({len(self.failures)} rows)"
        return f"parity of {self.export_dir} ({self.dtype}, spectral norm {self.spectral_norm}): {verdict}\n{self.table()}"


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))) if a.size else 0.0


def _scale(a: np.ndarray) -> float:
    return max(1.0, float(np.max(np.abs(a)))) if a.size else 1.0


def _shapes(batch_sizes: tuple[int, ...], leading_dims: bool, n: int) -> list[tuple[int, ...]]:
    shapes = [(int(b), n) for b in batch_sizes]
    return [*shapes, (*LEADING_DIMS, n)] if leading_dims else shapes


def check(
    model: iResNet | iResNetBlock,
    export_dir: str | Path,
    runtimes: list[str] | None = None,
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES,
    seed: int = 0,
    *,
    leading_dims: bool = True,
) -> ParityReport:
    """Compare ``model`` with ``export_dir``'s graphs on each runtime (default: every ONNX runtime
    in :func:`iresnet_onnx.runtimes.available`). Never raises on a miss: see :func:`assert_parity`."""
    export_dir = Path(export_dir)
    names = runtimes or [name for name in rt.available() if not name.startswith("torch:")]
    for name in names:
        rt.require(*rt.parse_runtime(name))
    forward_path, inverse_path = export_dir / "forward.onnx", export_dir / "inverse.onnx"
    _, info = rt.read_model(forward_path)
    _, inverse_info = rt.read_model(inverse_path)  # missing or foreign: an error up front
    k_steps = inverse_info.steps_per_check
    dtype = info.dtype.name
    if dtype not in TOLERANCES:
        raise ValueError(f"no parity tolerances for dtype {dtype}")
    tolerance = TOLERANCES[dtype]
    eager_forward = EagerSession(model, direction="forward")
    eager_inverse = EagerSession(model, direction="inverse")
    solver_maxiter = max(block.maxiter for block in eager_inverse.blocks)
    atol = max(block.atol for block in eager_inverse.blocks)
    rtol = max(block.rtol for block in eager_inverse.blocks)
    tight = {**ROUNDTRIP_SOLVER[dtype], "maxiter": ROUNDTRIP_MAXITER_FACTOR * solver_maxiter}

    report = ParityReport(str(export_dir), dtype, info.spectral_norm, seed, dict(tolerance))
    rng = np.random.default_rng(seed)
    cases = [
        (
            shape,
            rng.standard_normal(shape).astype(info.dtype),
            rng.standard_normal(shape).astype(info.dtype),
        )
        for shape in _shapes(tuple(batch_sizes), leading_dims, info.input_size)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        expected = [(eager_forward.run(x), eager_inverse.run_all(y)) for _, x, y in cases]
    for name in names:
        runtime, device = rt.parse_runtime(name)
        forward = rt.load(forward_path, runtime, device)
        inverse = rt.load(inverse_path, runtime, device)
        for (shape, x, y), (y_eager, inverse_eager) in zip(cases, expected):
            started = time.perf_counter()
            y_onnx = forward.run(x)
            seconds = time.perf_counter() - started
            error = _max_abs(y_onnx, y_eager)
            limit = tolerance["forward"] * _scale(y_eager)
            report.rows.append(ParityRow(
                name, "forward", list(shape), error, error / _scale(y_eager), limit, error <= limit, seconds
            ))  # fmt: skip

            started = time.perf_counter()
            inverse_onnx = inverse.run_all(y)
            seconds = time.perf_counter() - started
            x_eager, x_onnx = inverse_eager["x"], inverse_onnx["x"]
            steps, eager_steps = (
                inverse_onnx["iterations"].tolist(),
                inverse_eager["iterations"].tolist(),
            )
            gaps = [a - b for a, b in zip(steps, eager_steps)]
            converged = inverse_onnx["residual"] <= atol
            eager_converged = inverse_eager["residual"] <= atol
            steps_ok = (
                len(steps) == len(eager_steps)
                # rounding can move a stop by one test: one step, or one K-step turn
                and all(-1 <= gap <= k_steps for gap in gaps)
                # where both took the same steps they must agree on having converged
                and all(c == e for c, e, g in zip(converged, eager_converged, gaps) if g == 0)
            )
            error = _max_abs(x_onnx, x_eager)
            limit = tolerance["inverse"] * _scale(x_eager)
            if x_eager.size:
                step_size = atol + rtol * float(np.max(np.abs(x_eager)))
                limit += max((abs(g) for g in gaps), default=0) * step_size
            report.rows.append(ParityRow(
                name, "inverse", list(shape), error, error / _scale(x_eager), limit,
                error <= limit and steps_ok, seconds, steps, eager_steps,
            ))  # fmt: skip

            started = time.perf_counter()
            x_tight = inverse.run(y, **tight)
            seconds = time.perf_counter() - started
            error = _max_abs(eager_forward.run(x_tight), y)
            limit = tolerance["roundtrip"] * _scale(y)
            report.rows.append(ParityRow(
                name, "roundtrip", list(shape), error, error / _scale(y), limit, error <= limit, seconds
            ))  # fmt: skip
    return report


def assert_parity(
    model: iResNet | iResNetBlock, export_dir: str | Path, **kwargs: Any
) -> ParityReport:
    """:func:`check`, raising :class:`ParityError` with the first failing row on a miss."""
    report = check(model, export_dir, **kwargs)
    if not report.passed:
        first = report.failures[0]
        raise ParityError(
            f"parity miss: {first.describe()} ({len(report.failures)} of {len(report.rows)} rows failed)\n"
            f"{report.table()}"
        )
    return report
