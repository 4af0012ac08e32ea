"""The parity suite: an exported model against eager PyTorch, on any runtime, with numbers.

For every runtime and batch size, on fresh random inputs (never the export's shapes), ``check`` runs

``forward``    ONNX ``y`` vs eager ``y``                           ≤ tol_f · max(1, |y|∞)
``inverse``    ONNX ``x`` vs eager ``x`` (model's solver settings) ≤ tol_i · max(1, |x|∞), and the
               step counts per block: eager's exactly (a graph exported with ``steps_per_check=K``
               tests every K steps: eager's count rounded up to a multiple of K, within maxiter;
               see :meth:`~iresnet_onnx._tolerances.StepRule.graph_steps`). One test apart
               (±1 step, ±K) is admitted only for a block whose final residual lies within
               rounding of atol on either side — there the two stops are equally right — and then
               the x tolerance also admits those steps (each moves x by ≤ atol + rtol·|x|∞).
               Converged flags (residual ≤ atol; NaN is not converged) must agree likewise.
``capped``     the inverse with ``maxiter=3``, atol = rtol = 0: both must stop at exactly 3 steps
               per block, with the same x (a graph whose Loop runs a step short, or ignores
               maxiter, fails here)
``roundtrip``  eager f(ONNX f⁻¹(y)) vs y, solved tightly             ≤ tol_r · max(1, |y|∞)
``density``    ONNX log p(x) vs eager log p(x) (density.onnx)      ≤ tol_d · max(1, |log p|∞)
``jacobian``   ONNX log|det ∂f/∂x| vs slogdet of autograd's full Jacobian of a float64 copy
               of the model: the independent reference of the lemma   ≤ tol_d · max(1, |log det|∞)

with tol_f, tol_i, tol_r, tol_d = 1e-5, 1e-4, 1e-4, 1e-4 in float32 and 1e-12, 1e-9, 1e-9, 1e-9 in
float64. Rows stop one by one; a block's step count is its slowest row's and its residual the
largest final row residual, which in a large batch nearly always lies near atol — there the
boundary admission is usually granted, and the batch-1 rows keep the step check sharp. "Within
rounding of atol" means |residual − atol| ≤ 16·eps·max(1, |x|∞): in float32 with atol = 1e-6 and
|x| ≈ 3 that band is about 6e-6 wide, so a float32 model at such a tight atol cannot tell a stopping
rule that is off by a factor of two from rounding; float64 models and looser tolerances can, and the
mutation tests use them. The round trip runs the inverse with tolerances near rounding level
(float32: atol 1e-7, rtol 1e-6), so it checks that the graph inverts f, whatever tolerances the
model was trained with.
"""

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import runtimes as rt
from ._iresnet import iResNet, iResNetBlock
from ._layout import graph_file
from ._ops import log_abs_det
from ._report import ParityReport, ParityRow, load_or_note
from ._tolerances import TOLERANCES, StepRule, compare
from ._torch_session import EagerSession
from .errors import ParityError, UsageError

__all__ = ["TOLERANCES", "ParityError", "ParityReport", "ParityRow", "assert_parity", "check"]

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
class _Case:
    """One input shape: fresh x (forward, density) and y (inverse), and eager's outputs."""

    shape: tuple[int, ...]
    x: np.ndarray
    y: np.ndarray
    forward: np.ndarray | None = None
    inverse: dict[str, np.ndarray] | None = None
    capped: dict[str, np.ndarray] | None = None
    log_prob: np.ndarray | None = None
    log_det: np.ndarray | None = None
    """log|det ∂f/∂x| from autograd's full Jacobian: the reference independent of the lemma."""


@dataclass
class _Settings:
    """The solver settings each inverse row runs with, and the rule its steps are judged by."""

    steps: StepRule
    tight: dict[str, Any]
    capped: dict[str, Any]


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
    _check_batch_sizes(batch_sizes)
    paths = {graph: graph_file(export_dir, graph) for graph in ("forward", "inverse", "density")}
    _, info = rt.read_model(paths["forward"])
    _, inverse_info = rt.read_model(paths["inverse"])  # missing or foreign: an error up front
    dtype = info.dtype.name
    if dtype not in TOLERANCES:
        raise UsageError(f"no parity tolerances for dtype {dtype}")
    settings = _settings(model, dtype, inverse_info.steps_per_check, info.dtype)
    eager = {graph: EagerSession(model, graph=graph) for graph in paths}
    cases = _cases(eager, model, info, batch_sizes, leading_dims, seed, settings,
                   density=paths["density"].is_file())  # fmt: skip
    report = ParityReport(str(export_dir), dtype, info.spectral_norm, seed, dict(TOLERANCES[dtype]))
    for name in names:
        notes = report.unsupported if requested else report.skipped
        sessions = {
            graph: load_or_note(notes, name, path)
            for graph, path in paths.items()
            if graph != "density" or cases[0].log_prob is not None
        }
        for case in cases:
            report.rows += _case_rows(
                name, sessions, case, settings, eager["forward"], report.tolerances
            )
    return report


BATCH_LIMIT = 100_000
"""The largest batch a parity check draws: a check, not a workload (and its inputs fit memory)."""


def _check_batch_sizes(batch_sizes: tuple[int, ...]) -> None:
    if not batch_sizes or any(
        isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 1 <= b <= BATCH_LIMIT
        for b in batch_sizes
    ):
        raise UsageError(f"batch_sizes must be ints in 1…{BATCH_LIMIT:,}, got {batch_sizes!r}")


def _settings(model: Any, dtype: str, steps_per_check: int, np_dtype: np.dtype) -> _Settings:
    blocks = [module for module in model.modules() if isinstance(module, iResNetBlock)]
    solver = {
        "maxiter": max(block.maxiter for block in blocks),
        "atol": max(block.atol for block in blocks),
        "rtol": max(block.rtol for block in blocks),
    }
    return _Settings(
        steps=StepRule(steps_per_check, solver, np.finfo(np_dtype).eps),
        tight={**ROUNDTRIP_SOLVER[dtype], "maxiter": ROUNDTRIP_MAXITER_FACTOR * solver["maxiter"]},
        capped={"maxiter": CAPPED_MAXITER, "atol": 0.0, "rtol": 0.0},
    )


def _cases(
    eager: dict[str, EagerSession], model: Any, info: rt.ModelInfo, batch_sizes: tuple[int, ...], leading_dims: bool, seed: int,
    settings: _Settings, density: bool,
) -> list[_Case]:  # fmt: skip
    """Fresh inputs of each shape (batch sizes, then leading dims) and eager's outputs for them."""
    rng = np.random.default_rng(seed)
    n = info.input_size
    shapes = [(int(b), n) for b in batch_sizes] + ([(*LEADING_DIMS, n)] if leading_dims else [])
    double = copy.deepcopy(model).double().eval() if density else None
    cases = []
    for shape in shapes:
        case = _Case(shape, rng.standard_normal(shape).astype(info.dtype),
                     rng.standard_normal(shape).astype(info.dtype))  # fmt: skip
        case.forward = eager["forward"].run(case.x)
        case.inverse = eager["inverse"].run_all(case.y)
        case.capped = eager["inverse"].run_all(case.y, **settings.capped)
        if double is not None:
            case.log_prob = eager["density"].run_all(case.x)["log_prob"]
            case.log_det = _jacobian_log_det(double, case.x)
        cases.append(case)
    return cases


def _jacobian_log_det(double: Any, x: np.ndarray) -> np.ndarray:
    """log|det ∂f/∂x| per row from autograd's full Jacobian of a float64 copy of the model —
    the independent reference of the lemma (n vector-Jacobian products)."""
    flat = torch.from_numpy(x.reshape(-1, x.shape[-1])).double()
    # rows are independent: the Jacobian of Σ_rows f is every row's Jacobian side by side
    jacobian = torch.autograd.functional.jacobian(lambda v: double(v).sum(0), flat)
    return log_abs_det(jacobian.permute(1, 0, 2)).reshape(x.shape[:-1]).numpy()


def _timed(session: rt.Session, array: np.ndarray, **solver: Any) -> tuple[dict, float]:
    started = time.perf_counter()
    outputs = session.run_all(array, **solver)
    return outputs, time.perf_counter() - started


def _case_rows(
    name: str, sessions: dict[str, rt.Session | None], case: _Case, settings: _Settings,
    eager_forward: EagerSession, tolerance: dict[str, float],
) -> list[ParityRow]:  # fmt: skip
    """The rows of one input shape on one runtime (see the module docstring)."""
    rows = []
    if sessions.get("forward") is not None:
        outputs, seconds = _timed(sessions["forward"], case.x)
        rows.append(compare(name, "forward", case.shape, outputs["y"], case.forward, tolerance,
                            seconds))  # fmt: skip
    inverse = sessions.get("inverse")
    if inverse is not None:
        for check_name, options, expected in (
            ("inverse", {}, case.inverse),
            ("capped", settings.capped, case.capped),
        ):
            outputs, seconds = _timed(inverse, case.y, **options)
            row = compare(name, check_name, case.shape, outputs["x"], expected["x"], tolerance,
                          seconds)  # fmt: skip
            settings.steps.judge(row, outputs, expected, options)
            rows.append(row)
        outputs, seconds = _timed(inverse, case.y, **settings.tight)
        round_trip = eager_forward.run(outputs["x"])
        rows.append(compare(name, "roundtrip", case.shape, round_trip, case.y, tolerance, seconds))
    density = sessions.get("density")
    if density is not None:
        outputs, seconds = _timed(density, case.x)
        rows.append(compare(name, "density", case.shape, outputs["log_prob"], case.log_prob,
                            tolerance, seconds))  # fmt: skip
        rows.append(compare(name, "jacobian", case.shape, outputs["log_det"], case.log_det,
                            tolerance, 0.0))  # fmt: skip
    return rows


def assert_parity(
    model: iResNet | iResNetBlock, export_dir: str | Path, **kwargs: Any
) -> ParityReport:
    """:func:`check`, raising :class:`ParityError` with the first failing row on a miss."""
    report = check(model, export_dir, **kwargs)
    if not report.passed:
        first = report.failures[0]
        raise ParityError(
            f"parity miss: {first} ({len(report.failures)} of {len(report.rows)} rows failed)\n"
            f"{report.table()}"
        )
    return report
