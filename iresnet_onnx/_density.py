r"""The exact log-determinant of an iResNet block, by the matrix determinant lemma, in torch.

A block is y = x + g(x), and J_g factors through the bottleneck, so det(I_n + J_g) is the
determinant of a small matrix I + S (:func:`iresnet_onnx._structure.lemma_matrix`): k×k, k = hidden
size, or the n×n form where that is smaller. Each block is a contraction plus the identity, so the
determinant is positive; log|det| is its log. The cost per sample is O(n·k²) (lowrank) or O(k³)
(mlp) instead of n vector-Jacobian products and an n×n determinant. ϕ′ comes from the activation
table, which follows torch's own conventions at the kinks, so the result equals autograd's.
"""

import math
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional

from ._branch import Layer, TorchMath, activation_derivative
from ._contraction import LinearContraction
from ._ops import log_abs_det, unit_plus_log_det
from ._structure import lemma_matrix

__all__ = [
    "forward_and_log_det",
    "gaussian_log_density",
    "layers_forward_and_log_det",
    "log_abs_det",
]


def forward_and_log_det(block: Any, x: Tensor) -> tuple[Tensor, Tensor]:
    """``(y, log|det ∂y/∂x|)`` of one iResNetBlock for ``x`` of shape ``[..., n]``: y like x,
    log-det ``[...]``. Differentiable in x and in the weights (σ through SpectralNorm in training)."""
    layers: list[Layer] = [
        (module.effective_weight(), module.bias)
        if isinstance(module, LinearContraction)
        else module
        for module in block.bottleneck
    ]
    return layers_forward_and_log_det(layers, block.HP["variant"], block.hidden_size, x)


def layers_forward_and_log_det(
    layers: list[Layer], variant: str, hidden: int, x: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`forward_and_log_det` of the block whose g is ``layers`` (for the frozen form too)."""
    weights: list[Tensor] = []
    derivatives: list[Tensor] = []
    h = x
    for layer in layers:
        if isinstance(layer, tuple):
            weights.append(layer[0])
            h = functional.linear(h, *layer)
        else:
            derivatives.append(activation_derivative(layer, h))
            h = layer(h)
    small = lemma_matrix(variant, TorchMath(x), weights, derivatives, x.shape[-1], hidden)
    if torch.compiler.is_compiling():  # one op that torch.export and the ONNX route keep whole
        return x + h, unit_plus_log_det(small)
    identity = torch.eye(small.shape[-1], dtype=small.dtype, device=small.device)
    return x + h, log_abs_det(identity + small)


def gaussian_log_density(z: Tensor) -> Tensor:
    """log N(z; 0, I) per sample: −½‖z‖² − (n/2)·log 2π, shape ``[...]``."""
    return -0.5 * (z.square().sum(-1) + z.shape[-1] * math.log(2 * math.pi))
