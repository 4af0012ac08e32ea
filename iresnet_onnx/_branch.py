"""The residual branch g of a block as plain tensor code: a layer plan (:mod:`._structure`) made
concrete with tensors, applied, and linearised.

A layer is a linear step as ``(A′, bias)`` or an activation module. The frozen form, the custom
ops' kernels and the density run g through these functions; :func:`linearize` gives g's
vector-Jacobian products from the activation table's ϕ′, without autograd (an op's kernel runs
below autograd, where autograd records nothing).
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional

from ._structure import ACTIVATIONS, LinearStep, Step

__all__ = [
    "Layer",
    "TorchMath",
    "activation_derivative",
    "apply_layers",
    "linearize",
    "make_layers",
]

Layer = tuple[Tensor, Tensor | None] | nn.Module
"""One step of g: a linear step as ``(A′, bias)``, or an activation module."""


class TorchMath:
    """The :class:`~iresnet_onnx._structure.Math` vocabulary in torch (differentiable). Python
    floats in ``where`` become tensors of ``like``'s dtype: torch would make them float32, and
    0.01 in float32 is not 0.01 in a float64 model."""

    exp, sigmoid, tanh, abs = (
        staticmethod(f) for f in (torch.exp, torch.sigmoid, torch.tanh, torch.abs)
    )
    ones_like, matmul = staticmethod(torch.ones_like), staticmethod(torch.matmul)

    def __init__(self, like: Tensor):
        self.like = like

    def where(self, condition: Tensor, a: Any, b: Any) -> Tensor:
        def tensor(value: Any) -> Tensor:
            if isinstance(value, Tensor):
                return value
            return torch.tensor(value, dtype=self.like.dtype, device=self.like.device)

        return torch.where(condition, tensor(a), tensor(b))

    @staticmethod
    def greater(u: Tensor, c: float) -> Tensor:
        return u > c

    @staticmethod
    def less(u: Tensor, c: float) -> Tensor:
        return u < c

    @staticmethod
    def both(a: Tensor, b: Tensor) -> Tensor:
        return a & b

    @staticmethod
    def add(a: Any, b: Any) -> Tensor:
        return a + b

    @staticmethod
    def sub(a: Any, b: Any) -> Tensor:
        return a - b

    @staticmethod
    def mul(a: Any, b: Any) -> Tensor:
        return a * b

    @staticmethod
    def div(a: Any, b: Any) -> Tensor:
        return a / b

    @staticmethod
    def scale_columns(matrix: Tensor, d: Tensor) -> Tensor:
        return matrix * d.unsqueeze(-2)

    @staticmethod
    def scale_rows(matrix: Tensor, d: Tensor) -> Tensor:
        return d.unsqueeze(-1) * matrix

    @staticmethod
    def sandwich(left: Tensor, d: Tensor, right: Tensor) -> Tensor:
        # the scaled copy and a batched product: two ops, the fewest at batch 1 (density.onnx
        # takes one GEMM instead, see OnnxMath.sandwich)
        return torch.matmul(left * d.unsqueeze(-2), right)


def activation_derivative(activation: nn.Module, u: Tensor) -> Tensor:
    """ϕ′(u) elementwise for an activation module the package allows (see the table)."""
    return ACTIVATIONS[type(activation).__name__].derivative(TorchMath(u), u)


def make_layers(steps: Sequence[Step], parameters: Sequence[Tensor]) -> list[Layer]:
    """The layers of ``steps`` from ``parameters``: each linear step's A′, then its bias where the
    step has one, in order (what ``iResNetBlock.g_parameters`` returns)."""
    remaining = iter(parameters)
    layers: list[Layer] = []
    for step in steps:
        if isinstance(step, LinearStep):
            weight = next(remaining)
            layers.append((weight, next(remaining) if step.bias else None))
        else:
            layers.append(_activation(step.name))
    return layers


@functools.cache
def _activation(name: str) -> nn.Module:
    """One module per activation name: the table's activations hold no state (no parameters, no
    buffers), so every g may share it, and a solver that makes its layers per step pays nothing."""
    return getattr(nn, name)()


def apply_layers(x: Tensor, layers: Sequence[Layer]) -> Tensor:
    """g(x). An activation's ``forward`` is called directly: the layers hold the package's own
    modules (:func:`_activation`), which no hook is registered on, and a module call's hook
    machinery costs more than a small activation at batch 1."""
    for layer in layers:
        x = functional.linear(x, *layer) if isinstance(layer, tuple) else layer.forward(x)
    return x


def linearize(
    layers: Sequence[Layer], x: Tensor
) -> tuple[Callable[[Tensor], Tensor], Callable[[Tensor], list[Tensor]]]:
    """g's vector-Jacobian products at ``x`` (``[rows, n]``): ``(w ↦ J_gᵀw, w ↦ [∂(w·g)/∂φ…])``,
    the second in the order of the parameters (each A′, then its bias)."""
    inputs, derivatives = [], []
    h = x
    for layer in layers:
        inputs.append(h)
        if isinstance(layer, tuple):
            derivatives.append(None)
            h = functional.linear(h, *layer)
        else:
            derivatives.append(activation_derivative(layer, h))
            h = layer(h)

    def backward(w: Tensor, parameters: list[Tensor] | None) -> Tensor:
        for layer, h_in, d in reversed(list(zip(layers, inputs, derivatives))):
            if isinstance(layer, tuple):  # h_out = h_in A′ᵀ + b
                weight, bias = layer
                if parameters is not None:
                    if bias is not None:
                        parameters.insert(0, w.sum(0))
                    parameters.insert(0, w.transpose(0, 1) @ h_in)
                w = w @ weight
            else:
                w = w * d
        return w

    def vjp_parameters(w: Tensor) -> list[Tensor]:
        parameters: list[Tensor] = []
        backward(w, parameters)
        return parameters

    return (lambda w: backward(w, None)), vjp_parameters
