"""The parity suite: an exported model against eager PyTorch, on any runtime, with numbers.

For every runtime and batch size, on fresh random inputs (never the export's shapes), ``check`` runs

``forward``    ONNX ``y`` vs eager ``y``                           ≤ tol_f · max(1, |y|∞)
``inverse``    ONNX ``x`` vs eager ``x`` (model's solver settings) ≤ tol_i · max(1, |x|∞), and the
               step counts per block: eager's exactly (a graph exported with ``steps_per_check=K``
               tests every K steps: eager's count rounded up to a multiple of K). One test apart
               (±1 step, ±K) is admitted only for a block whose final residual lies within
               rounding of atol on either side — there the two stops are equally right — and then
               the x tolerance also admits those steps (each moves x by ≤ atol + rtol·|x|∞).
               Converged flags (residual ≤ atol; NaN is not converged) must agree likewise.
``capped``     the inverse with ``maxiter=3`` (rounded up to K), atol = rtol = 0: both must stop
               at exactly that many steps per block, with the same x (a graph whose Loop runs a
               step short, or ignores maxiter, fails here)
``roundtrip``  eager f(ONNX f⁻¹(y)) vs y, solved tightly             ≤ tol_r · max(1, |y|∞)

with tol_f, tol_i, tol_r = 1e-5, 1e-4, 1e-4 in float32 and 1e-12, 1e-9, 1e-9 in float64. "Within
rounding of atol" means |residual − atol| ≤ 16·eps·max(1, |x|∞): in float32 with atol = 1e-6 and
|x| ≈ 3 that band is about 6e-6 wide, so a float32 model at such a tight atol cannot tell a stopping
rule that is off by a factor of two from rounding; float64 models and looser tolerances can, and the
mutation tests use them. The round trip runs the inverse with tolerances near rounding level
(float32: atol 1e-7, rtol 1e-6), so it checks that the graph inverts f, whatever tolerances the
model was trained with.
"""

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import runtimes as rt
from .errors import ParityError, UnsupportedModelError
from .iresnet import iResNet, iResNetBlock
from .runtimes.eager import EagerSession

__all__ = ["TOLERANCES", "ParityError", "ParityReport", "ParityRow", "assert_parity", "check"]

TOLERANCES = {
    "float32": {"forward": 1e-5, "inverse": 1e-4, "capped": 1e-4, "roundtrip": 1e-4},
    "float64": {"forward": 1e-12, "inverse": 1e-9, "capped": 1e-9, "roundtrip": 1e-9},
}
BOUNDARY_ULPS = 16
"""How close to atol (in units of eps·max(1, |x|∞)) a residual lies "within rounding" of it."""
CAPPED_MAXITER = 3
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
    unsupported: list[dict[str, str]] = field(default_factory=list)
    """Graphs a requested runtime cannot run: ``{"runtime", "graph", "reason"}`` — never a pass."""
    skipped: list[dict[str, str]] = field(default_factory=list)
    """The same for runtimes that were not requested (the default "every runtime here"):
    listed, not held against the export."""

    @property
    def passed(self) -> bool:
        return bool(self.rows) and all(row.passed for row in self.rows) and not self.unsupported

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
        if self.passed:
            verdict = "PASSED"
        else:
            verdict = f"FAILED ({len(self.failures)} rows, {len(self.unsupported)} unsupported)"
        lines = [
            f"parity of {self.export_dir} ({self.dtype}, spectral norm {self.spectral_norm}): "
            f"{verdict}",
            self.table(),
        ]
        lines += [
            f"{kind}: {entry['runtime']} {entry['graph']}: {entry['reason']}"
            for kind, entries in (("unsupported", self.unsupported), ("skipped", self.skipped))
            for entry in entries
        ]
        return "\n".join(lines)


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
    in :func:`iresnet_onnx.runtimes.available` that can run them). Never raises on a miss: see
    :func:`assert_parity`. A requested runtime that cannot run a graph is ``unsupported`` (the
    report does not pass); by default such a runtime is only listed as ``skipped``."""
    export_dir = Path(export_dir)
    requested = runtimes is not None
    names = runtimes or [name for name in rt.available() if not name.startswith("torch:")]
    for name in names:
        rt.require(*rt.parse_runtime(name))
    forward_path, inverse_path = export_dir / "forward.onnx", export_dir / "inverse.onnx"
    _, info = rt.read_model(forward_path)
    _, inverse_info = rt.read_model(inverse_path)  # missing or foreign: an error up front
    dtype = info.dtype.name
    if dtype not in TOLERANCES:
        raise ValueError(f"no parity tolerances for dtype {dtype}")
    tolerance = TOLERANCES[dtype]
    eager_forward = EagerSession(model, direction="forward")
    eager_inverse = EagerSession(model, direction="inverse")
    blocks = [module for module in model.modules() if isinstance(module, iResNetBlock)]
    solver = {
        "maxiter": max(block.maxiter for block in blocks),
        "atol": max(block.atol for block in blocks),
        "rtol": max(block.rtol for block in blocks),
    }
    steps = _StepRule(inverse_info.steps_per_check, solver, np.finfo(info.dtype).eps)
    tight = {**ROUNDTRIP_SOLVER[dtype], "maxiter": ROUNDTRIP_MAXITER_FACTOR * solver["maxiter"]}
    k = inverse_info.steps_per_check
    capped = {"maxiter": -(-CAPPED_MAXITER // k) * k, "atol": 0.0, "rtol": 0.0}

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
    expected = [
        (eager_forward.run(x), eager_inverse.run_all(y), eager_inverse.run_all(y, **capped))
        for _, x, y in cases
    ]
    for name in names:
        notes = report.unsupported if requested else report.skipped
        forward = _load_or_note(notes, name, forward_path)
        inverse = _load_or_note(notes, name, inverse_path)
        for (shape, x, y), (y_eager, inverse_eager, capped_eager) in zip(cases, expected):
            if forward is not None:
                started = time.perf_counter()
                y_onnx = forward.run_all(x)["y"]
                seconds = time.perf_counter() - started
                report.rows.append(
                    _compare(name, "forward", shape, y_onnx, y_eager, tolerance, seconds)
                )
            if inverse is None:
                continue

            for direction, options, eager_outputs in (
                ("inverse", {}, inverse_eager),
                ("capped", capped, capped_eager),
            ):
                started = time.perf_counter()
                outputs = inverse.run_all(y, **options)
                seconds = time.perf_counter() - started
                row = _compare(
                    name, direction, shape, outputs["x"], eager_outputs["x"], tolerance, seconds
                )
                steps.judge(row, outputs, eager_outputs, options)
                report.rows.append(row)

            started = time.perf_counter()
            x_tight = inverse.run_all(y, **tight)["x"]
            seconds = time.perf_counter() - started
            report.rows.append(
                _compare(
                    name, "roundtrip", shape, eager_forward.run(x_tight), y, tolerance, seconds
                )
            )
    return report


def _load_or_note(notes: list[dict[str, str]], name: str, path: Path) -> rt.Session | None:
    """The graph on runtime ``name``, or None after noting why the runtime cannot run it."""
    try:
        return rt.load(path, *rt.parse_runtime(name))
    except UnsupportedModelError as error:
        notes.append({"runtime": name, "graph": path.name, "reason": str(error)})
        return None


def _compare(
    name: str,
    direction: str,
    shape: tuple[int, ...],
    actual: np.ndarray,
    expected: np.ndarray,
    tolerance: dict[str, float],
    seconds: float,
) -> ParityRow:
    error = _max_abs(actual, expected)
    limit = tolerance[direction] * _scale(expected)
    return ParityRow(
        name,
        direction,
        list(shape),
        error,
        error / _scale(expected),
        limit,
        error <= limit,
        seconds,
    )


@dataclass
class _StepRule:
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
        cap = -(-settings["maxiter"] // self.k) * self.k  # maxiter rounded up to a multiple of K
        widen = 0
        for taken, eager_taken, residual, eager_residual in zip(
            steps, eager_steps, outputs["residual"].tolist(), eager["residual"].tolist()
        ):
            on_boundary = any(abs(r - atol) <= band for r in (residual, eager_residual))
            expected = min(-(-eager_taken // self.k) * self.k, cap)
            converged, eager_converged = residual <= atol, eager_residual <= atol
            if taken == expected:
                ok = converged == eager_converged or on_boundary
            else:
                ok = abs(taken - expected) == self.k and on_boundary
                widen = max(widen, abs(taken - eager_taken))
            steps_ok = steps_ok and ok
        if widen:
            row.tolerance += widen * (atol + rtol * magnitude)
        row.passed = steps_ok and row.max_abs <= row.tolerance


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
