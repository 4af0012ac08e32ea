r"""The exact log-determinant of an iResNet block, by the matrix determinant lemma.

A block is y = x + g(x), and its Jacobian I + J_g has a low-rank part: J_g factors through the
bottleneck, so det(I_n + A·B) = det(I_k + B·A) turns an n×n determinant into a k×k one:

- ``lowrank``  g = ϕ(W₁W₂x + …), J_g = D W₁ W₂        → det(I_k + W₂ D W₁)              (k = hidden)
- ``mlp``      g = W₃ϕ(W₂ϕ(W₁x)), J_g = W₃ D₂ W₂ D₁ W₁ → det(I_h + (W₁W₃) D₂ W₂ D₁)       (h = hidden)

with D = diag(ϕ′(u)) at the activation's input u. Where the hidden size exceeds n (a 2-D flow
with 32 hidden units), the n×n form det(I_n + J_g) is the smaller one and is used instead. Each block is a contraction plus the identity,
so the determinant is positive; log|det| is its log. The cost per sample is O(n·k² ) (lowrank) or
O(h³) (mlp) instead of n vector-Jacobian products and an n×n determinant. ϕ′ follows torch's own
conventions at the kinks (ReLU′(0) = 0, Hardtanh′(±1) = 0, LeakyReLU′(0) = slope, Softplus′ = 1
above its threshold), so the result equals what autograd would give.
"""

import math

import torch
from torch import Tensor, nn
from torch.nn import functional

from ._contraction import LinearContraction

__all__ = ["activation_derivative", "forward_and_log_det", "gaussian_log_density", "log_abs_det"]


def activation_derivative(activation: nn.Module, u: Tensor) -> Tensor:
    """ϕ′(u) elementwise, for every activation the package allows, as torch's autograd defines it."""
    name = type(activation).__name__
    one = torch.ones_like(u)
    if name == "ReLU":
        return (u > 0).to(u.dtype)
    if name in ("ELU", "CELU"):
        alpha = float(activation.alpha)
        scale = 1.0 if name == "ELU" else 1.0 / alpha
        return torch.where(u > 0, one, alpha * scale * torch.exp(u * scale))
    if name == "LeakyReLU":
        return torch.where(u > 0, one, torch.full_like(u, float(activation.negative_slope)))
    if name in ("Hardtanh", "ReLU6"):
        low, high = float(activation.min_val), float(activation.max_val)
        return ((u > low) & (u < high)).to(u.dtype)
    if name == "Sigmoid":
        s = torch.sigmoid(u)
        return s * (1 - s)
    if name == "Softplus":
        beta, threshold = float(activation.beta), float(activation.threshold)
        return torch.where(u * beta > threshold, one, torch.sigmoid(u * beta))
    if name == "Softsign":
        return 1 / (1 + u.abs()) ** 2
    if name == "Tanh":
        return 1 - torch.tanh(u) ** 2
    if name == "Identity":
        return one
    raise ValueError(f"no derivative for activation {name}")


def forward_and_log_det(block: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(y, log|det ∂y/∂x|)`` of one block for ``x`` of shape ``[..., n]``: y like x, log-det
    ``[...]``. Differentiable in x and in the weights (σ through SpectralNorm in training)."""
    weights: list[Tensor] = []
    derivatives: list[Tensor] = []
    h = x
    for module in block.bottleneck:
        if isinstance(module, LinearContraction):
            weights.append(_weight(module))
            h = functional.linear(h, weights[-1], module.bias)
        else:
            derivatives.append(activation_derivative(module, h))
            h = module(h)
    y = x + h
    n, hidden = x.shape[-1], weights[0].shape[0]
    if block.HP["variant"] == "lowrank":
        w2, w1 = weights  # W₂: k×n (applied first), W₁: n×k
        (d,) = derivatives
        if hidden <= n:
            small = (w2 * d.unsqueeze(-2)) @ w1  # W₂ D W₁: [..., k, k]
        else:
            small = d.unsqueeze(-1) * (w1 @ w2)  # D W₁W₂: [..., n, n]
    else:
        w1, w2, w3 = weights
        d1, d2 = derivatives
        if hidden <= n:
            coupled = w1 @ w3  # W₁W₃: h×h, the same for every sample
            small = (coupled * d2.unsqueeze(-2)) @ (w2 * d1.unsqueeze(-2))  # W₁W₃ D₂ W₂ D₁
        else:
            small = (w3 * d2.unsqueeze(-2)) @ ((w2 * d1.unsqueeze(-2)) @ w1)  # W₃D₂ · W₂D₁W₁
    identity = torch.eye(small.shape[-1], dtype=small.dtype, device=small.device)
    return y, log_abs_det(identity + small)


BATCHED_SLOGDET_LIMIT = 128
"""torch 2.13's CPU slogdet of a *batch* of matrices larger than about 128×128 is wrong with more
than one intra-op thread (MKL's batched LU: "Parameter 6 was incorrect on entry to SLASWP", and
log-dets off by units); one matrix at a time is right."""


def log_abs_det(matrices: Tensor) -> Tensor:
    """log|det| of each matrix of ``[..., m, m]``, differentiable; see
    :data:`BATCHED_SLOGDET_LIMIT` for why large matrices go one at a time."""
    if matrices.shape[-1] <= BATCHED_SLOGDET_LIMIT or matrices.device.type != "cpu":
        return torch.linalg.slogdet(matrices)[1]
    flat = matrices.reshape(-1, *matrices.shape[-2:])
    values = [torch.linalg.slogdet(matrix)[1] for matrix in flat]
    return (
        torch.stack(values).reshape(matrices.shape[:-2])
        if values
        else flat.new_zeros(matrices.shape[:-2])
    )


def _weight(layer: LinearContraction) -> Tensor:
    if layer.training or (torch.is_grad_enabled() and layer.weight.requires_grad):
        return layer.effective_weight()
    return layer.frozen_effective_weight()


def gaussian_log_density(z: Tensor) -> Tensor:
    """log N(z; 0, I) per sample: −½‖z‖² − (n/2)·log 2π, shape ``[...]``."""
    return -0.5 * (z.square().sum(-1) + z.shape[-1] * math.log(2 * math.pi))
