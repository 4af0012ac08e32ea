r"""The spectral norm ‖A‖₂ = σ_max(A) by power iteration, and its custom autograd function.

Every implementation of the spectral norm in this package (eager, TorchScript and the ONNX power
iteration ``Loop``) runs the algorithm of :func:`power_iteration`, step for step:

1. Work on the *tall* form ``T`` of ``A`` (``A`` itself, or ``Aᵀ`` when ``A`` is wide): the Gram
   matrix ``TᵀT`` is then the smaller of ``AᵀA`` and ``AAᵀ`` and the iterate has ``min(m, n)`` entries.
2. Divide ``T`` by ``s = max|A|``, so that neither huge nor tiny scales over- or underflow when the
   entries are squared. ``σ(A) = s·σ(T/s)``, and the gradient ``u vᵀ`` does not depend on ``s``.
3. From the unit start vector ``x`` compute ``λ = ‖T̂x‖²`` (the Rayleigh quotient of ``T̂ᵀT̂``) and the
   residual ``r = T̂ᵀT̂x − λx``. Stop once ``‖r‖₂ ≤ rtol·‖λx‖₂ + atol`` (checked *before* the first
   update, so a converged warm start costs no update) or after ``maxiter`` updates ``x ← T̂ᵀT̂x / ‖·‖``.
   The tolerances apply to the normalised matrix ``T̂``, which makes the result scale-equivariant.
4. ``σ = s·√λ``.  The zero matrix gives ``λ = 0``, ``r = 0``: σ = 0 at once, never NaN.

The default cold start is the unit vector ``e_j`` of the largest column of ``T``: it never lies in
the null space of ``A`` (``‖T e_j‖ ≥ max|T|``), so the iteration cannot stall at σ = 0 for A ≠ 0.
"""

from typing import Any, NamedTuple, Optional

import torch
from torch import Tensor
from torch.nn import functional

from .errors import UsageError, UsageTypeError

__all__ = [
    "PowerIterationResult",
    "SpectralNorm",
    "power_iteration",
    "singular_vectors",
    "spectral_norm",
    "start_vector",
    "start_vector_branch_free",
]


class PowerIterationResult(NamedTuple):
    """What one run of :func:`power_iteration` found."""

    sigma: Tensor
    """0-d: the spectral norm ‖A‖₂ ≥ 0."""
    u: Tensor
    """[m]: the left singular vector of σ (zeros when σ = 0)."""
    v: Tensor
    """[n]: the right singular vector of σ."""
    vector: Tensor
    """[min(m, n)]: the final unit iterate, the warm start for the next call."""
    iterations: int
    """Number of updates of the iterate (0 when the start vector was already converged)."""


def tall_form(A: Tensor) -> Tensor:
    """``A`` if it has at least as many rows as columns, else ``Aᵀ``: same singular values."""
    return A if A.shape[0] >= A.shape[1] else A.transpose(0, 1)


def cold_start(A: Tensor) -> Tensor:
    """The unit vector ``e_j`` of the largest column of the tall form of ``A``."""
    T = tall_form(A)
    j = torch.argmax(torch.linalg.vector_norm(T, dim=0))
    x0 = torch.zeros(T.shape[1], dtype=A.dtype, device=A.device)
    x0[j] = 1.0
    return x0


def start_vector(A: Tensor, x0: Optional[Tensor] = None) -> Tensor:
    """The unit start vector of the iteration: ``x0`` normalised, or the cold start when ``x0`` is
    missing, zero or not finite (a zero warm start would stall the iteration at σ = 0)."""
    if x0 is not None:
        x = x0.to(dtype=A.dtype, device=A.device)
        norm = torch.linalg.vector_norm(x)
        if bool(torch.isfinite(norm) & (norm > 0)):  # one host sync, not two
            return x / norm
    return cold_start(A)


def start_vector_branch_free(A: Tensor, x0: Tensor) -> Tensor:
    """:func:`start_vector` without Python branches on values, for graphs that torch traces
    (torch.export, torch.compile): the same vector, chosen by ``torch.where``."""
    T = tall_form(A)
    norm = torch.linalg.vector_norm(x0)
    usable = torch.isfinite(norm) & (norm > 0)
    cold = functional.one_hot(torch.argmax(torch.linalg.vector_norm(T, dim=0)), T.shape[1])
    return torch.where(usable, x0 / torch.where(usable, norm, 1.0), cold.to(A.dtype))


def singular_vectors(
    A: Tensor, vector: Tensor, Tx: Optional[Tensor] = None
) -> tuple[Tensor, Tensor]:
    """``(u, v)`` of σ_max from the power iteration's final unit iterate of the tall form of A (the
    left vector is zero where A is): what the derivative ∂σ/∂A = u vᵀ needs. ``Tx``: the tall form
    (or a positive multiple of it) times ``vector``, where the caller has it."""
    if Tx is None:
        Tx = tall_form(A) @ vector
    norm = torch.linalg.vector_norm(Tx)
    left = torch.where(norm > 0, Tx / torch.where(norm > 0, norm, 1.0), torch.zeros_like(Tx))
    return (left, vector) if A.shape[0] >= A.shape[1] else (vector, left)


def power_iteration(
    A: Tensor,
    x0: Optional[Tensor] = None,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    maxiter: int = 10,
) -> PowerIterationResult:
    """Run the power iteration described in the module docstring on a 2-D tensor (no autograd).

    ``x0`` is the start vector of length ``min(m, n)``; by default (or when it is zero or not
    finite) the cold start of :func:`cold_start`.
    """
    with torch.no_grad():
        if A.numel() == 0:  # ‖A‖₂ of an empty matrix is 0: nothing to iterate on
            m, n = A.shape
            return PowerIterationResult(
                A.new_zeros([]), A.new_zeros([m]), A.new_zeros([n]), A.new_zeros([min(m, n)]), 0
            )
        T = tall_form(A)
        scale = T.abs().amax()
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        T = T / scale
        x = start_vector(A, x0)

        Tx = T @ x
        lam = torch.dot(Tx, Tx)
        z = T.transpose(0, 1) @ Tx
        excess = torch.linalg.vector_norm(z - lam * x) - (rtol * lam + atol)
        iterations = 0
        while iterations < maxiter and bool(excess > 0):
            x = z / torch.linalg.vector_norm(z)
            Tx = T @ x
            lam = torch.dot(Tx, Tx)
            z = T.transpose(0, 1) @ Tx
            excess = torch.linalg.vector_norm(z - lam * x) - (rtol * lam + atol)
            iterations += 1

        sigma_hat = torch.sqrt(lam)
        u, v = singular_vectors(A, x, Tx)
        return PowerIterationResult(scale * sigma_hat, u, v, x, iterations)


def _check_matrix(A: Tensor, x0: Optional[Tensor]) -> None:
    if not isinstance(A, Tensor) or A.ndim != 2:
        shape = tuple(A.shape) if isinstance(A, Tensor) else type(A).__name__
        raise UsageError(f"spectral norm: expected a 2-D tensor, got {shape}")
    if not A.is_floating_point():
        raise UsageTypeError(f"spectral norm: expected a floating-point tensor, got {A.dtype}")
    if x0 is not None and x0.shape != (min(A.shape),):
        raise UsageError(
            f"spectral norm: start vector must have shape ({min(A.shape)},) for a "
            f"{tuple(A.shape)} matrix, got {tuple(x0.shape)}"
        )


def spectral_norm(
    A: Tensor,
    atol: float = 1e-4,
    rtol: float = 1e-3,
    maxiter: int = 10,
    *,
    x0: Optional[Tensor] = None,
) -> Tensor:
    """‖A‖₂ by power iteration: a 0-d tensor ≥ 0, without gradient.

    Tolerances and ``maxiter`` are the seed's defaults; pass ``x0`` (length ``min(m, n)``) to warm-start.
    Raises ``ValueError`` for a tensor that is not 2-D or holds NaN/Inf, or a start vector of the
    wrong length.
    """
    _check_matrix(A, x0)
    if not bool(torch.isfinite(A).all()):
        raise UsageError("spectral norm: the matrix contains NaN or Inf")
    return power_iteration(A, x0, atol=atol, rtol=rtol, maxiter=maxiter).sigma


def working_precision_rtol(dtype: torch.dtype) -> float:
    """A relative residual tolerance just above the rounding floor of ``dtype``.

    The residual ‖T̂ᵀT̂x − λx‖ cannot drop much below ``eps·λ`` times a small factor, and σ's error
    is of the order of the squared residual, so ``rtol = 64·eps`` is as converged as ``dtype`` allows.
    """
    return 64.0 * torch.finfo(dtype).eps


class SpectralNorm(torch.autograd.Function):
    r"""σ = ‖A‖₂ as a differentiable function: ``SpectralNorm.apply(A, atol, rtol, maxiter, x0)``.

    The derivative of the spectral norm is ∂‖A‖₂/∂A = u vᵀ, with u and v the left and right singular
    vectors of σ_max, so the backward pass returns ``g·u vᵀ``. σ is always ≥ 0.

    With no options the iteration runs to working precision (``atol = 0``, ``rtol`` just above the
    rounding floor of A's dtype, up to 10 000 updates). A start vector ``x0`` (length ``min(m, n)``)
    warm-starts the iteration and, like the ``u`` buffer of ``torch.nn.utils.spectral_norm``, is
    overwritten in place with the final iterate so that the next call starts converged.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        A: Tensor,
        atol: float = 0.0,
        rtol: Optional[float] = None,
        maxiter: int = 10_000,
        x0: Optional[Tensor] = None,
    ) -> Tensor:
        _check_matrix(A, x0)
        if rtol is None:
            rtol = working_precision_rtol(A.dtype)
        result = power_iteration(A, x0, atol=atol, rtol=rtol, maxiter=maxiter)
        if x0 is not None:
            x0.copy_(result.vector)
        ctx.save_for_backward(result.u, result.v)
        return result.sigma

    @staticmethod
    def backward(ctx: Any, grad_sigma: Tensor) -> tuple[Optional[Tensor], None, None, None, None]:
        u, v = ctx.saved_tensors
        return grad_sigma * torch.outer(u, v), None, None, None, None
