"""What the benchmarks run: the benchmark model, and the baselines a user would write instead of
deploying (plain PyTorch with A′ precomputed; the autograd-Jacobian log-likelihood)."""

import contextlib
import math
from typing import Any

import torch
from torch.nn import functional

from .._contraction import LinearContraction
from .._iresnet import iResNet
from .._ops import log_abs_det

__all__ = ["Baseline", "jacobian_log_prob", "scale_weights", "suite_model", "torch_threads"]


@contextlib.contextmanager
def torch_threads(threads: int):
    """torch's intra-op thread count for a benchmark, restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Baseline:
    """What a user would write instead of deploying: A′ once, then plain tensor code."""

    def __init__(self, model: iResNet):
        self.blocks = []
        with torch.no_grad():
            for block in model.blocks:
                layers = []
                for module in block.bottleneck:
                    if isinstance(module, LinearContraction):
                        sigma = torch.linalg.matrix_norm(module.weight, 2)
                        weight = module.weight * torch.clamp(module.c / sigma, max=1.0)
                        layers.append((weight.clone(), module.bias))
                    else:
                        layers.append(module)
                self.blocks.append(layers)

    @staticmethod
    def _g(layers: list, x: torch.Tensor) -> torch.Tensor:
        for layer in layers:
            x = functional.linear(x, *layer) if isinstance(layer, tuple) else layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            for layers in self.blocks:
                x = x + self._g(layers, x)
            return x

    def inverse(self, y: torch.Tensor, maxiter: int, atol: float, rtol: float) -> torch.Tensor:
        with torch.no_grad():
            for layers in reversed(self.blocks):
                x = y
                for _ in range(maxiter):
                    x_next = y - self._g(layers, x)
                    residual = torch.amax(torch.abs(x_next - x) - rtol * torch.abs(x))
                    x = x_next
                    if residual.item() <= atol:
                        break
                y = x
            return y


def scale_weights(model: torch.nn.Module, factor: float) -> torch.nn.Module:
    """Multiply every weight by ``factor`` in place (σ grows ×factor: the contraction bites)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("weight"):
                parameter.mul_(factor)
    return model


def suite_model(
    width: int, nblocks: int = 5, scale: float = 10.0, seed: int = 0, **block_hp: Any
) -> iResNet:
    """The benchmark's model: default HP (or ``block_hp``), weights ×``scale``, eval mode."""
    torch.manual_seed(seed)
    return scale_weights(iResNet(width, nblocks=nblocks, iResNetBlock=block_hp), scale).eval()


def jacobian_log_prob(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """log p(x) the way a user would write it without the lemma: the full Jacobian, one
    vector-Jacobian product per dimension, then slogdet (differentiable, ``create_graph``)."""
    x = x.detach().requires_grad_(True)
    z = model(x)
    rows = [torch.autograd.grad(z[:, i].sum(), x, create_graph=True)[0] for i in range(x.shape[-1])]
    log_det = log_abs_det(torch.stack(rows, dim=1))  # row i is ∂z_i/∂x
    return -0.5 * (z.square().sum(-1) + x.shape[-1] * math.log(2 * math.pi)) + log_det
