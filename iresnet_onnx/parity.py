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
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import runtimes as rt
from ._density import log_abs_det
from ._iresnet import iResNet, iResNetBlock
from ._tolerances import TOLERANCES, ParityReport, ParityRow, StepRule, compare, load_or_note
from ._torch_session import EagerSession
from .errors import ParityError

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
    steps = StepRule(inverse_info.steps_per_check, solver, np.finfo(info.dtype).eps)
    tight = {**ROUNDTRIP_SOLVER[dtype], "maxiter": ROUNDTRIP_MAXITER_FACTOR * solver["maxiter"]}
    capped = {"maxiter": CAPPED_MAXITER, "atol": 0.0, "rtol": 0.0}

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
    density_path = export_dir / "density.onnx"
    density_expected = _density_references(model, cases) if density_path.is_file() else None
    for name in names:
        notes = report.unsupported if requested else report.skipped
        forward = load_or_note(notes, name, forward_path)
        inverse = load_or_note(notes, name, inverse_path)
        density = load_or_note(notes, name, density_path) if density_expected else None
        for (shape, x, y), (y_eager, inverse_eager, capped_eager) in zip(cases, expected):
            if forward is not None:
                started = time.perf_counter()
                y_onnx = forward.run_all(x)["y"]
                seconds = time.perf_counter() - started
                report.rows.append(
                    compare(name, "forward", shape, y_onnx, y_eager, tolerance, seconds)
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
                row = compare(
                    name, direction, shape, outputs["x"], eager_outputs["x"], tolerance, seconds
                )
                steps.judge(row, outputs, eager_outputs, options)
                report.rows.append(row)

            started = time.perf_counter()
            x_tight = inverse.run_all(y, **tight)["x"]
            seconds = time.perf_counter() - started
            report.rows.append(
                compare(name, "roundtrip", shape, eager_forward.run(x_tight), y, tolerance, seconds)
            )
        if density is not None:
            report.rows += _density_rows(name, density, cases, density_expected, tolerance)
    return report


def _density_references(
    model: iResNet | iResNetBlock, cases: list[tuple]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per case: eager log p(x), and log|det ∂f/∂x| from autograd's full Jacobian of a float64
    copy of the model — the independent reference (n vector-Jacobian products, no lemma)."""
    eager = EagerSession(model, direction="density")
    double = copy.deepcopy(model).double().eval()
    references = []
    for _, x, _ in cases:
        flat = torch.from_numpy(x.reshape(-1, x.shape[-1])).double()
        # rows are independent: the Jacobian of Σ_rows f is every row's Jacobian side by side
        jacobian = torch.autograd.functional.jacobian(lambda v: double(v).sum(0), flat)
        log_det = log_abs_det(jacobian.permute(1, 0, 2)).reshape(x.shape[:-1])
        references.append((eager.run_all(x)["log_prob"], log_det.numpy()))
    return references


def _density_rows(
    name: str, session: rt.Session, cases: list[tuple], references: list, tolerance: dict
) -> list[ParityRow]:
    """``density``: log p against eager; ``jacobian``: the log-det against autograd's Jacobian."""
    rows = []
    for (shape, x, _), (log_prob, log_det) in zip(cases, references):
        started = time.perf_counter()
        outputs = session.run_all(x)
        seconds = time.perf_counter() - started
        rows.append(
            compare(name, "density", shape, outputs["log_prob"], log_prob, tolerance, seconds)
        )
        rows.append(compare(name, "jacobian", shape, outputs["log_det"], log_det, tolerance, 0.0))
    return rows


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
