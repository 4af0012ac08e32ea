"""spectral_norm and SpectralNorm against torch.linalg (an independent SVD) in float64."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from iresnet_onnx import SpectralNorm, spectral_norm
from iresnet_onnx._spectral import cold_start, power_iteration


def named_matrices() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    a, b = (
        torch.randn(7, generator=g, dtype=torch.float64),
        torch.randn(5, generator=g, dtype=torch.float64),
    )
    base = torch.randn(6, 6, generator=g, dtype=torch.float64)
    return {
        "zero": torch.zeros(4, 3, dtype=torch.float64),
        "identity": torch.eye(5, dtype=torch.float64),
        "plus_minus": torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64),
        "rank1": torch.outer(a, b),
        "1x1": torch.tensor([[-3.5]], dtype=torch.float64),
        "tall": torch.randn(40, 3, generator=g, dtype=torch.float64),
        "wide": torch.randn(3, 40, generator=g, dtype=torch.float64),
        "huge": base * 1e150,
        "tiny": base * 1e-150,
        "diagonal_small_first": torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)),
    }


@pytest.mark.parametrize("name", list(named_matrices()))
def test_sigma_matches_svd_on_named_matrices(name):
    A = named_matrices()[name]
    expected = torch.linalg.matrix_norm(A, 2)
    sigma = SpectralNorm.apply(A)
    assert sigma.ndim == 0 and sigma >= 0 and torch.isfinite(sigma)
    torch.testing.assert_close(sigma, expected, rtol=1e-12, atol=0.0)


@pytest.mark.parametrize("name", list(named_matrices()))
def test_seed_defaults_are_close_on_named_matrices(name):
    A = named_matrices()[name]
    expected = torch.linalg.matrix_norm(A, 2)
    sigma = spectral_norm(A)
    assert sigma >= 0
    torch.testing.assert_close(sigma, expected, rtol=1e-3, atol=0.0)


@pytest.mark.parametrize("name", ["rank1", "tall", "wide", "huge", "tiny", "plus_minus", "1x1"])
def test_gradient_matches_svd_gradient(name):
    A = named_matrices()[name]
    A1 = A.clone().requires_grad_(True)
    A2 = A.clone().requires_grad_(True)
    SpectralNorm.apply(A1).backward()
    torch.linalg.matrix_norm(A2, 2).backward()
    torch.testing.assert_close(A1.grad, A2.grad, rtol=1e-7, atol=1e-9)


def test_gradient_of_zero_matrix_is_finite():
    A = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    SpectralNorm.apply(A).backward()
    assert torch.isfinite(A.grad).all()


def test_gradcheck():
    g = torch.Generator().manual_seed(1)
    for shape in [(5, 5), (8, 3), (3, 8)]:
        A = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda M: SpectralNorm.apply(M), (A,))


def test_sign_is_never_negative_over_random_matrices():
    g = torch.Generator().manual_seed(2)
    for _ in range(150):
        m, n = torch.randint(1, 12, (2,), generator=g).tolist()
        A = torch.randn(m, n, generator=g, dtype=torch.float64)
        sigma = SpectralNorm.apply(A)
        assert sigma >= 0
        torch.testing.assert_close(sigma, torch.linalg.matrix_norm(A, 2), rtol=1e-10, atol=0.0)


def test_backward_scales_with_incoming_gradient():
    A = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    (3.0 * SpectralNorm.apply(A)).backward()
    result = power_iteration(A.detach(), None, 0.0, 1e-14, 10_000)
    torch.testing.assert_close(A.grad, 3.0 * torch.outer(result.u, result.v))


def test_options_pass_through_apply_and_warm_start_is_updated():
    A = torch.randn(6, 4, dtype=torch.float64)
    x0 = cold_start(A)
    one_step = SpectralNorm.apply(A, 0.0, 1e-14, 1, x0.clone())
    converged = SpectralNorm.apply(A, 0.0, 1e-14, 10_000, x0)
    assert one_step <= converged  # Rayleigh quotients rise towards σ_max
    # x0 now holds the converged iterate: the next call needs no update
    again = power_iteration(A, x0, 0.0, 1e-14, 10_000)
    assert again.iterations == 0
    torch.testing.assert_close(again.sigma, converged)


def test_warm_start_of_spectral_norm_function():
    A = torch.randn(5, 9, dtype=torch.float64)
    v = power_iteration(A, None, 0.0, 1e-14, 10_000).vector
    assert power_iteration(A, v, 1e-4, 1e-3, 10).iterations == 0
    torch.testing.assert_close(spectral_norm(A, x0=v), torch.linalg.matrix_norm(A, 2))


def test_scale_equivariance():
    A = torch.randn(6, 6, dtype=torch.float32)
    for scale in (2.0**60, 2.0**-60):
        assert spectral_norm(A * scale) == spectral_norm(A) * scale


def test_float32_huge_and_tiny_do_not_overflow():
    A = torch.randn(8, 5, dtype=torch.float64)
    for scale in (1e30, 1e-30):
        sigma = SpectralNorm.apply((A * scale).float())
        torch.testing.assert_close(
            sigma.double(), torch.linalg.matrix_norm(A * scale, 2), rtol=1e-5, atol=0.0
        )


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 24),
    n=st.integers(1, 24),
    log_scale=st.floats(-100, 100),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_sigma_matches_svd(m, n, log_scale, seed):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(m, n, generator=g, dtype=torch.float64) * 10.0**log_scale
    sigma = SpectralNorm.apply(A)
    torch.testing.assert_close(sigma, torch.linalg.matrix_norm(A, 2), rtol=1e-10, atol=0.0)


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (torch.ones(3), ValueError),
        (torch.ones(2, 2, 2), ValueError),
        (torch.ones(2, 2, dtype=torch.int64), TypeError),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), ValueError),
        (torch.tensor([[1.0, float("inf")], [0.0, 1.0]]), ValueError),
    ],
)
def test_bad_input(bad, error):
    with pytest.raises(error, match="spectral norm"):
        spectral_norm(bad)


def test_start_vector_of_wrong_length():
    with pytest.raises(ValueError, match=r"start vector must have shape \(3,\)"):
        spectral_norm(torch.ones(3, 5), x0=torch.ones(5))


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0)])
def test_empty_matrix_has_norm_zero(shape):
    A = torch.zeros(shape, requires_grad=True)
    assert spectral_norm(A) == 0 and SpectralNorm.apply(A) == 0
    SpectralNorm.apply(A).backward()
    assert A.grad.shape == shape
