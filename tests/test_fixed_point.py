"""The fixed-point solver as a free function: any contraction g, rows that stop on their own, and
the implicit gradient in y and in g's parameters."""

import torch

from iresnet_onnx._fixed_point import FixedPoint, fixed_point, solve
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


def test_stops_at_maxiter_and_reports_nan_as_not_converged():
    w, b = parameters()
    result = fixed_point(contraction, torch.randn(3, 4, dtype=torch.float64), 2, 0.0, 0.0, (w, b))
    assert int(result.iterations) == 2 and result.residual > 0
    blown = solve(lambda x: x * float("nan"), torch.ones(2, 3), 10, 1e-6, 0.0)
    assert int(blown.iterations) == 1 and torch.isnan(blown.residual)


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


def test_the_torchscript_copy_takes_the_same_steps():
    model = make_model(6, 3, variant="mlp", seed=2)
    scripted = torch.jit.script(model)
    y = torch.randn(40, 6)
    y[3] *= 20.0
    with torch.no_grad():
        x_eager, steps_eager, residual_eager = model.inverse_with_stats(y)
        x_script, steps_script, residual_script = scripted.inverse_with_stats(y)
    assert steps_script.tolist() == steps_eager.tolist()
    assert (residual_script <= 1e-6).tolist() == (residual_eager <= 1e-6).tolist()
    torch.testing.assert_close(x_script, x_eager, rtol=1e-5, atol=1e-5)
