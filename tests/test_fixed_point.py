"""The fixed-point solver as a free function: any contraction g, rows that stop on their own, and
the implicit gradient in y and in g's parameters."""

import pytest
import torch

from iresnet_onnx._fixed_point import COMPACT_ROWS, FixedPoint, fixed_point, solve
from tests.conftest import make_model


def contraction(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.tanh(x @ w.T + b)


def parameters(n: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    w = torch.randn(n, n, generator=generator, dtype=torch.float64)
    w = 0.8 * w / torch.linalg.matrix_norm(w, 2)  # Lip(g) ≤ 0.8
    return w, torch.randn(n, generator=generator, dtype=torch.float64)


def test_solves_any_contraction_row_by_row():
    w, b = parameters()
    y = torch.randn(6, 4, dtype=torch.float64)
    y[2] *= 30.0  # a row far out needs more steps
    result = fixed_point(contraction, y, 500, 1e-13, 1e-13, (w, b))
    torch.testing.assert_close(result.x + contraction(result.x, w, b), y, rtol=0, atol=1e-11)
    assert result.residual <= 1e-13
    alone = [
        solve(lambda x: contraction(x, w, b), y[i : i + 1], 500, 1e-13, 1e-13) for i in range(6)
    ]
    assert int(result.iterations) == max(int(r.iterations) for r in alone)
    for i, row in enumerate(alone):  # a row's result does not depend on its batch (but a GEMM of
        # one row and one of six may round differently)
        torch.testing.assert_close(result.x[i : i + 1], row.x, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rows", [2 * COMPACT_ROWS - 1, 6 * COMPACT_ROWS])
def test_rows_of_a_batch_stop_on_their_own(rows):
    """Below 2·COMPACT_ROWS rows, a stopped row keeps its stopping step's value by a select while
    it runs on; above, its value is set aside at once, and stopped rows leave the active set once
    half of it (and at least COMPACT_ROWS rows) has stopped. Both, and maxiter with rows stopped
    and running (before and after rows were taken out), give each row what it gets alone. A loose
    tolerance, so that a row's value one step later differs from its stopping step's by far more
    than rounding."""
    w, b = parameters()
    tol = 1e-4
    y = torch.randn(rows, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    y *= torch.logspace(-3, 3, rows, dtype=torch.float64).unsqueeze(-1)  # steps grow with the row
    y[7] = float("nan")  # stops at its first step, NaN: never converged
    g = lambda x: contraction(x, w, b)  # noqa: E731
    alone = [solve(g, y[i : i + 1], 500, tol, tol) for i in range(rows)]
    steps = sorted(int(r.iterations) for r in alone)
    # at least half of the rows stop before the last one: a large batch takes rows out
    assert steps[0] < steps[rows // 4] < steps[rows // 2] < steps[-1]
    # all stop; maxiter with a quarter of the rows stopped; maxiter as half stop (taken out, in a
    # large batch)
    for maxiter in (500, steps[rows // 4], steps[rows // 2]):
        result = solve(g, y, maxiter, tol, tol)
        alone = [solve(g, y[i : i + 1], maxiter, tol, tol) for i in range(rows)]
        assert int(result.iterations) == max(int(r.iterations) for r in alone)
        assert torch.isnan(result.residual)
        expected = torch.cat([r.x for r in alone])
        torch.testing.assert_close(result.x, expected, rtol=1e-13, atol=1e-13, equal_nan=True)
        finite = torch.stack([r.residual for r in alone if not torch.isnan(r.residual)])
        without_nan = solve(g, torch.cat([y[:7], y[8:]]), maxiter, tol, tol)
        torch.testing.assert_close(without_nan.residual, finite.amax(), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("rows", [2, 6 * COMPACT_ROWS])
def test_rows_that_stop_together_take_that_step(rows):
    w, b = parameters()
    g = lambda x: contraction(x, w, b)  # noqa: E731
    row = torch.randn(1, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    alone = solve(g, row, 500, 1e-10, 1e-10)
    result = solve(g, row.expand(rows, 4), 500, 1e-10, 1e-10)
    assert int(result.iterations) == int(alone.iterations)
    torch.testing.assert_close(result.x, alone.x.expand(rows, 4), rtol=0, atol=1e-14)
    torch.testing.assert_close(result.residual, alone.residual, rtol=0, atol=1e-14)


def test_stops_at_maxiter_and_reports_nan_as_not_converged():
    w, b = parameters()
    for rows in (3, 6 * COMPACT_ROWS):
        y = torch.randn(rows, 4, dtype=torch.float64)
        result = fixed_point(contraction, y, 2, 0.0, 0.0, (w, b))
        assert int(result.iterations) == 2 and result.residual > 0
    for y in (torch.ones(2, 3), torch.ones(1, 3), torch.ones(3)):  # one row: a path of its own
        blown = solve(lambda x: x * float("nan"), y, 10, 1e-6, 0.0)
        assert int(blown.iterations) == 1 and torch.isnan(blown.residual)
        assert blown.x.shape == y.shape and blown.residual.shape == ()
    one = fixed_point(contraction, torch.randn(4, dtype=torch.float64), 2, 0.0, 0.0, (w, b))
    assert int(one.iterations) == 2 and one.residual > 0 and one.x.shape == (4,)


def test_implicit_gradient_in_y_and_in_the_parameters():
    w, b = parameters(seed=1)
    w.requires_grad_(True)
    b.requires_grad_(True)
    y = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)

    def loss(y, w, b):
        return fixed_point(contraction, y, 1000, 1e-14, 1e-14, (w, b)).x.square().sum()

    assert torch.autograd.gradcheck(loss, (y, w, b))
    # and the graph holds one evaluation of g, not one per step
    x = fixed_point(contraction, y, 1000, 1e-14, 1e-14, (w, b)).x
    assert type(x.grad_fn).__name__ == FixedPoint.__name__ + "Backward"


@pytest.mark.parametrize(
    ("rows", "maxiter"),
    [(1, None), (1, 5), (40, None), (40, 5), (6 * COMPACT_ROWS, None), (6 * COMPACT_ROWS, 5)],
)
def test_the_torchscript_copy_takes_the_same_steps(rows, maxiter):
    """Also where rows stop in place (small batches) or are set aside and taken out (large ones),
    and meet maxiter in each state; a loose
    tolerance, so that a row's value one step past its stop differs by far more than rounding."""
    model = make_model(6, 3, variant="mlp", seed=2)
    scripted = torch.jit.script(model)
    y = torch.randn(rows, 6, generator=torch.Generator().manual_seed(rows))
    y *= torch.logspace(-2, 1.5, rows).unsqueeze(-1)  # steps grow with the row
    y[min(3, rows - 1)] *= 20.0
    tol = 1e-3
    with torch.no_grad():
        x_eager, steps_eager, residual_eager = model.inverse_with_stats(y, maxiter, tol, tol)
        x_script, steps_script, residual_script = scripted.inverse_with_stats(y, maxiter, tol, tol)
    assert steps_script.tolist() == steps_eager.tolist()
    assert (residual_script <= tol).tolist() == (residual_eager <= tol).tolist()
    torch.testing.assert_close(x_script, x_eager, rtol=1e-5, atol=1e-5)
