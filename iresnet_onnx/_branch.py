"""The residual branch g of a block as plain tensor code: a layer plan (:mod:`._structure`) made
concrete with tensors, and applied.

A layer is a linear step as ``(A′, bias)`` or an activation module. The frozen form, the custom
ops' kernels and the density all run g through these two functions.
"""

from collections.abc import Sequence

from torch import Tensor, nn
from torch.nn import functional

from ._structure import LinearStep, Step

__all__ = ["Layer", "apply_layers", "make_layers"]

Layer = tuple[Tensor, Tensor | None] | nn.Module
"""One step of g: a linear step as ``(A′, bias)``, or an activation module."""


def make_layers(steps: Sequence[Step], parameters: Sequence[Tensor]) -> list[Layer]:
    """The layers of ``steps`` from ``parameters``: each linear step's A′, then its bias where the
    step has one, in order (what ``iResNetBlock.g_parameters`` returns)."""
    remaining = iter(parameters)
    activations: dict[str, nn.Module] = {}
    layers: list[Layer] = []
    for step in steps:
        if isinstance(step, LinearStep):
            weight = next(remaining)
            layers.append((weight, next(remaining) if step.bias else None))
        else:
            if step.name not in activations:
                activations[step.name] = getattr(nn, step.name)()
            layers.append(activations[step.name])
    return layers


def apply_layers(x: Tensor, layers: Sequence[Layer]) -> Tensor:
    """g(x)."""
    for layer in layers:
        x = functional.linear(x, *layer) if isinstance(layer, tuple) else layer(x)
    return x
